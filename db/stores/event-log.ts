import type { Knex } from 'knex';
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
 * One page of the log, newest first, paged by id (keyset: `beforeId` is the last id of the
 * previous page), so the cost does not grow with the page number. Indexes of migration 0003
 * (portal_id + status / event / entity_id + id) keep the filtered pages off a full sort.
 */
export async function logPage(
  db: Knex,
  filter: LogFilter,
  pageSize: number,
): Promise<{ rows: LogRow[]; nextBeforeId: number | undefined }> {
  const q = applyEventFilter(db('events').select(LIST_COLUMNS), filter);
  // A text search reads at most TEXT_SCAN_ROWS ids per page; the next page goes on below.
  let floor = 0;
  if (filter.text) {
    const top = filter.beforeId ?? (await maxEventId(db)) + 1;
    floor = Math.max(0, top - TEXT_SCAN_ROWS);
    q.where('events.id', '<', top).where('events.id', '>=', floor);
    const p = likePattern(filter.text);
    q.where((w) =>
      w
        .whereRaw(`events.body like ? escape '\\'`, [p])
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
  const rows = (
    (await q.orderBy('events.id', 'desc').limit(pageSize + 1)) as Record<string, unknown>[]
  ).map((r) => normaliseEvent(r) as LogRow);
  const more = rows.length > pageSize;
  if (more) rows.length = pageSize;
  if (more) return { rows, nextBeforeId: rows[rows.length - 1]?.id };
  return { rows, nextBeforeId: floor > 1 ? floor : undefined };
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
