import type { Knex } from 'knex';
import { RANGE_ID_MARGIN_MS } from './arrival.js';
import {
  applyEventFilter,
  maxEventId,
  normaliseEvent,
  type EventFilter,
  type EventRow,
  type EventStatus,
} from './events.js';

/**
 * The event log's filter: the store's filter plus a text search over body and last error,
 * the rule an event matched, a set of statuses (an outcome) and event names left out.
 */
export interface LogFilter extends EventFilter {
  text?: string | undefined;
  /** Events this rule matched (rule_matches). */
  rule?: string | undefined;
  statuses?: readonly EventStatus[] | undefined;
  /** Event names not listed (the app's own lifecycle events, by default). */
  hideEvents?: readonly string[] | undefined;
  /**
   * With `entityType` and `entityId`: also the events of the records made in that one (a
   * call in a deal: migration 0037's links), as its deal tab lists them.
   */
  linked?: boolean | undefined;
}

/** A row of the log list: the event without its body. */
export type LogRow = Omit<EventRow, 'body' | 'auth_enc'>;

const LIST_COLUMNS = [
  'id',
  'portal_id',
  'member_id',
  'event',
  'event_handler_id',
  'entity_type',
  'entity_id',
  'ts',
  'dedupe_key',
  'duplicates',
  'status',
  'reject_reason',
  'source',
  'attempts',
  'last_error',
  'received_at',
  'processing_started_at',
  'processed_at',
  'queued_at',
  'remote_addr',
  'evaluated_at',
  'chain_depth',
].map((c) => `events.${c}`);

const likePattern = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * Most events a text-search page reads: the search is a scan (LIKE over bodies), so a page
 * reads this many ids down from where it starts and, short of a full page, offers the next
 * stretch as its "older" page. It never reads the whole table on the event loop.
 */
export const TEXT_SCAN_ROWS = 20_000;

/**
 * A text-search page reads its stretch of ids this many at a time, letting the event loop
 * run between them: on SQLite each read holds the main thread, every portal's requests with it.
 */
export const TEXT_SCAN_CHUNK = 2_000;

/**
 * Bodies longer than this are searched by their error text only. A delivery is about a
 * kilobyte (CRM events carry an ID); a portal may store bodies of up to BODY_LIMIT, and
 * reading 20,000 of 250 KB for one page held the main thread seconds. The length is read
 * without the text (`octet_length`: SQLite and PostgreSQL read it from the row's header).
 */
export const TEXT_SEARCH_BODY_BYTES = 16 * 1024;

/**
 * One page of the log, newest first, paged by id (keyset: `beforeId` is the last id of the
 * previous page), so the cost does not grow with the page number. Indexes of migration 0003
 * (portal_id + status / event / entity_id + id) keep the filtered pages off a full sort.
 * `afterId` asks for the page above instead (the "newer" link): the ids just above it, walked
 * up, and shown newest first like every page. `newerAfterId` is where the page above starts,
 * when there is one.
 */
export async function logPage(
  db: Knex,
  filter: LogFilter,
  pageSize: number,
): Promise<{ rows: LogRow[]; nextBeforeId: number | undefined; newerAfterId?: number }> {
  const up = filter.afterId !== undefined;
  const { from, to, ...rest } = filter;
  const { portalId, entityType, entityId } = filter;
  const linked =
    filter.linked && portalId !== undefined && entityType !== undefined && entityId !== undefined;
  const q = applyEventFilter(
    db('events').select(LIST_COLUMNS),
    linked ? { ...rest, entityType: undefined, entityId: undefined } : rest,
  );
  if (linked) {
    // The record's events and its linked ones, each by its index, as an id list the walk
    // below looks up (an OR would let the planner walk the whole log by id instead).
    q.whereIn(
      'events.id',
      db('events')
        .select('id')
        .where({ portal_id: portalId, entity_type: entityType, entity_id: entityId })
        .unionAll(
          db('event_owners')
            .select('event_id')
            .where({ portal_id: portalId, owner_type: entityType, owner_id: entityId }),
        ),
    );
  }
  if (from !== undefined || to !== undefined) {
    const bounds = await receivedIdBounds(db, filter);
    if (bounds.above !== undefined) q.where('events.id', '>', bounds.above);
    if (bounds.below !== undefined) q.where('events.id', '<', bounds.below);
    // The exact range still applies, with the unary plus keeping the planner on the id
    // walk instead of sorting a whole day of the received_at index by id.
    if (from !== undefined) q.whereRaw('+events.received_at >= ?', [from]);
    if (to !== undefined) q.whereRaw('+events.received_at < ?', [to]);
  }
  // A text search reads at most TEXT_SCAN_ROWS ids per page; the next page goes on below.
  let floor = 0;
  let top = 0;
  let newest = 0;
  if (filter.text) {
    if (up) {
      // Read up from the page below, the same stretch of ids a page reads down.
      newest = await maxEventId(db);
      floor = filter.afterId! + 1;
      top = floor + TEXT_SCAN_ROWS;
    } else {
      top = filter.beforeId ?? (await maxEventId(db)) + 1;
      floor = Math.max(0, top - TEXT_SCAN_ROWS);
    }
    const p = likePattern(filter.text);
    q.where((w) =>
      w
        .whereRaw(`octet_length(events.body) <= ? and events.body like ? escape '\\'`, [
          TEXT_SEARCH_BODY_BYTES,
          p,
        ])
        .orWhereRaw(`events.last_error like ? escape '\\'`, [p]),
    );
  }
  if (filter.statuses !== undefined) q.whereIn('events.status', [...filter.statuses]);
  if (filter.hideEvents?.length) q.whereNotIn('events.event', [...filter.hideEvents]);
  if (filter.rule !== undefined) {
    // One probe of rule_matches' (event_id, rule_name) unique index per candidate event.
    const rule = filter.rule;
    q.whereExists((sub) =>
      sub
        .select(db.raw('1'))
        .from('rule_matches')
        .whereRaw('rule_matches.event_id = events.id')
        .andWhere('rule_matches.rule_name', rule),
    );
  }
  q.orderBy('events.id', up ? 'asc' : 'desc');
  const found = filter.text
    ? await scanInChunks(q, floor, top, up, pageSize + 1)
    : ((await q.limit(pageSize + 1)) as Record<string, unknown>[]);
  const rows = found.map((r) => normaliseEvent(r) as LogRow);
  const more = rows.length > pageSize;
  if (more) rows.length = pageSize;
  if (up) {
    rows.reverse();
    const above = more ? rows[0]!.id : filter.text && top <= newest ? top - 1 : undefined;
    // Everything at or below afterId is older: the page that was below this one.
    return {
      rows,
      nextBeforeId: rows[rows.length - 1]?.id ?? filter.afterId! + 1,
      newerAfterId: above,
    };
  }
  // A page below the newest has a page above it: from its first row (or where it began).
  const newerAfterId =
    filter.beforeId !== undefined ? (rows[0]?.id ?? filter.beforeId - 1) : undefined;
  if (more) return { rows, nextBeforeId: rows[rows.length - 1]?.id, newerAfterId };
  return { rows, nextBeforeId: floor > 1 ? floor : undefined, newerAfterId };
}

/**
 * The rows of `q` with ids in [floor, top), walked TEXT_SCAN_CHUNK ids at a time (down, or up
 * with `up`) until `want` are found, the event loop running between two reads.
 */
async function scanInChunks(
  q: Knex.QueryBuilder,
  floor: number,
  top: number,
  up: boolean,
  want: number,
): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (let i = 0; out.length < want; i++) {
    const lo = up ? floor + i * TEXT_SCAN_CHUNK : Math.max(floor, top - (i + 1) * TEXT_SCAN_CHUNK);
    const hi = up ? Math.min(top, lo + TEXT_SCAN_CHUNK) : top - i * TEXT_SCAN_CHUNK;
    if (hi <= lo) break;
    if (i > 0) await new Promise((r) => setImmediate(r));
    const chunk = q
      .clone()
      .where('events.id', '>=', lo)
      .where('events.id', '<', hi)
      .limit(want - out.length);
    out.push(...((await chunk) as Record<string, unknown>[]));
  }
  return out;
}

export { RANGE_ID_MARGIN_MS };

/**
 * Ids are handed out in arrival order and `received_at` is the arrival time, so a time range
 * is an id range, found with two index seeks; the page then walks ids down from its top like
 * any other page instead of reading every event of the range (bounded with
 * RANGE_ID_MARGIN_MS, ./arrival.ts). The exact `received_at` bounds still filter the rows.
 */
async function receivedIdBounds(
  db: Knex,
  filter: LogFilter,
): Promise<{ above?: number; below?: number }> {
  const base = () => {
    const q = db('events').first('id');
    if (filter.portalId !== undefined) q.where('portal_id', filter.portalId);
    else if (filter.memberId !== undefined) q.where('member_id', filter.memberId);
    return q;
  };
  const out: { above?: number; below?: number } = {};
  if (filter.from !== undefined) {
    const row = (await base()
      .where('received_at', '<=', filter.from - RANGE_ID_MARGIN_MS)
      .orderBy('received_at', 'desc')) as { id: number | string } | undefined;
    if (row) out.above = Number(row.id);
  }
  if (filter.to !== undefined && filter.to < Number.MAX_SAFE_INTEGER - RANGE_ID_MARGIN_MS) {
    const row = (await base()
      .where('received_at', '>=', filter.to + RANGE_ID_MARGIN_MS)
      .orderBy('received_at', 'asc')) as { id: number | string } | undefined;
    if (row) out.below = Number(row.id);
  }
  return out;
}

/** What the deal tab shows of one action run. */
export interface ActionRunBrief {
  rule_name: string;
  step_index: number;
  step_name: string | null;
  action_type: string;
  status: string;
  error: string | null;
}

/** Action runs of several events at once, by event id (for the deal tab). */
export async function actionRunsByEvent(
  db: Knex,
  eventIds: readonly number[],
): Promise<Map<number, ActionRunBrief[]>> {
  const out = new Map<number, ActionRunBrief[]>();
  if (eventIds.length === 0) return out;
  const rows = (await db('action_runs')
    .whereIn('event_id', eventIds)
    .orderBy('id')
    .select(
      'event_id',
      'rule_name',
      'step_index',
      'step_name',
      'action_type',
      'status',
      'error',
    )) as Array<{
    event_id: number | string;
    rule_name: string;
    step_index: number;
    step_name: string | null;
    action_type: string;
    status: string;
    error: string | null;
  }>;
  for (const r of rows) {
    const id = Number(r.event_id);
    const list = out.get(id) ?? [];
    list.push({ ...r, step_index: Number(r.step_index) });
    out.set(id, list);
  }
  return out;
}

/**
 * How many steps of each of these events have succeeded (a step run again by a replay counts
 * once): the log says it of a processed event, whose Details were otherwise empty. One query
 * on the runs' event index.
 */
export async function succeededStepsByEvent(
  db: Knex,
  eventIds: readonly number[],
): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  if (eventIds.length === 0) return out;
  const rows = (await db('action_runs')
    .whereIn('event_id', eventIds)
    .where('status', 'succeeded')
    .groupBy('event_id', 'rule_name', 'step_index')
    .select('event_id')) as Array<{ event_id: number | string }>;
  for (const r of rows) out.set(Number(r.event_id), (out.get(Number(r.event_id)) ?? 0) + 1);
  return out;
}

/**
 * When each of these events is next tried: the earliest `run_at` of its pending job, for
 * events waiting for a retry (the deal tab says when, next to the last error).
 */
export async function nextAttemptByEvent(
  db: Knex,
  eventIds: readonly number[],
): Promise<Map<number, NextAttempt>> {
  const out = new Map<number, NextAttempt>();
  if (eventIds.length === 0) return out;
  const rows = (await db('jobs')
    .whereIn('event_id', eventIds)
    .where('status', 'pending')
    .groupBy('event_id')
    .select(
      'event_id',
      db.raw('min(run_at) as run_at'),
      db.raw('max(waiting_for) as waiting_for'),
    )) as Array<{
    event_id: number | string;
    run_at: number | string;
    waiting_for: string | null;
  }>;
  for (const r of rows) {
    out.set(Number(r.event_id), { at: Number(r.run_at), waiting: r.waiting_for !== null });
  }
  return out;
}

/**
 * When an event's job runs next, and whether it waits for a destination that is down (its
 * step was not sent, so no attempt failed: the deal tab says so, not "this attempt failed").
 */
export interface NextAttempt {
  at: number;
  waiting: boolean;
}
