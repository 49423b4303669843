import type { Knex } from 'knex';
import {
  changeEvents,
  countNewEvents,
  countsByStatus,
  countsByStatusByPortal,
  oldestPendingAt,
  oldestPendingByPortal,
  processingTimes,
  processingTimesByPortal,
} from './rollups.js';

export const EVENT_STATUSES = [
  'received',
  'processing',
  'processed',
  'failed',
  'skipped',
  'rejected',
  'unverified',
] as const;
export type EventStatus = (typeof EVENT_STATUSES)[number];

/** Statuses that count as backlog: received but not finished, retries included. */
export const BACKLOG_STATUSES: readonly EventStatus[] = ['received', 'processing', 'unverified'];

export interface EventRow {
  id: number;
  portal_id: number | null;
  member_id: string | null;
  event: string;
  event_handler_id: string | null;
  entity_type: string | null;
  entity_id: string | null;
  ts: number | null;
  body: string | null;
  auth_enc: string | null;
  dedupe_key: string | null;
  duplicates: number;
  status: EventStatus;
  reject_reason: string | null;
  source: string;
  attempts: number;
  last_error: string | null;
  received_at: number;
  processing_started_at: number | null;
  processed_at: number | null;
  /** When it was last replayed (a replay, or "retry now" in the UI); null: never. */
  queued_at: number | null;
  remote_addr: string | null;
  /** When the rules were first evaluated (null: not yet). */
  evaluated_at: number | null;
  /** Loop guard: how many of our own writes led to this event. */
  chain_depth: number;
}

export interface EventFilter {
  memberId?: string | undefined;
  portalId?: number | undefined;
  event?: string | undefined;
  status?: EventStatus | undefined;
  entityType?: string | undefined;
  entityId?: string | undefined;
  /** Inclusive lower bound on received_at (ms). */
  from?: number | undefined;
  /** Exclusive upper bound on received_at (ms). */
  to?: number | undefined;
  /** Keyset pagination: only ids below this one. */
  beforeId?: number | undefined;
  /** Keyset pagination the other way (the log's "newer" page): only ids above this one. */
  afterId?: number | undefined;
  /** Only these events (the UI's "retry now" replays exactly one). */
  ids?: readonly number[] | undefined;
  limit?: number | undefined;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function normaliseEvent(row: Record<string, unknown>): EventRow {
  return {
    ...(row as unknown as EventRow),
    id: Number(row.id),
    portal_id: num(row.portal_id),
    ts: num(row.ts),
    duplicates: Number(row.duplicates),
    attempts: Number(row.attempts),
    received_at: Number(row.received_at),
    processing_started_at: num(row.processing_started_at),
    processed_at: num(row.processed_at),
    queued_at: num(row.queued_at),
    evaluated_at: num(row.evaluated_at),
    chain_depth: Number(row.chain_depth ?? 0),
  };
}

export function applyEventFilter(q: Knex.QueryBuilder, f: EventFilter): Knex.QueryBuilder {
  if (f.memberId !== undefined) q.where('events.member_id', f.memberId);
  if (f.portalId !== undefined) q.where('events.portal_id', f.portalId);
  if (f.event !== undefined) q.where('events.event', f.event.toUpperCase());
  if (f.status !== undefined) q.where('events.status', f.status);
  if (f.entityType !== undefined) q.where('events.entity_type', f.entityType);
  if (f.entityId !== undefined) q.where('events.entity_id', f.entityId);
  if (f.from !== undefined) q.where('events.received_at', '>=', f.from);
  if (f.to !== undefined) q.where('events.received_at', '<', f.to);
  if (f.beforeId !== undefined) q.where('events.id', '<', f.beforeId);
  if (f.afterId !== undefined) q.where('events.id', '>', f.afterId);
  if (f.ids !== undefined) q.whereIn('events.id', [...f.ids]);
  return q;
}

/** The event log, newest first. */
export async function listEvents(db: Knex, filter: EventFilter): Promise<EventRow[]> {
  const q = applyEventFilter(db('events').select('events.*'), filter).orderBy('events.id', 'desc');
  if (filter.limit !== undefined) q.limit(filter.limit);
  const rows = (await q) as Record<string, unknown>[];
  return rows.map(normaliseEvent);
}

export async function getEvent(db: Knex, id: number): Promise<EventRow | undefined> {
  const row = (await db('events').where({ id }).first()) as Record<string, unknown> | undefined;
  return row ? normaliseEvent(row) : undefined;
}

export interface StatusFigures {
  received: number;
  processing: number;
  processed: number;
  failed: number;
  skipped: number;
  rejected: number;
  unverified: number;
  backlog: number;
  oldestPendingSeconds: number;
  avgProcessingMs: number;
  p95ProcessingMs: number;
}

export const emptyFigures = (): StatusFigures => ({
  received: 0,
  processing: 0,
  processed: 0,
  failed: 0,
  skipped: 0,
  rejected: 0,
  unverified: 0,
  backlog: 0,
  oldestPendingSeconds: 0,
  avgProcessingMs: 0,
  p95ProcessingMs: 0,
});

/** Processing time statistics cover events finished in this window before `now`. */
export const PROCESSING_WINDOW_MS = 24 * 3600 * 1000;

/**
 * Figures for `b24hooks status`, the dashboard and `/metrics`: counts by status, backlog,
 * oldest pending age, and average / p95 processing time (receipt, or the last replay, to
 * finished; p95 from the rollups' histogram) over the last 24 hours. Read from the rollups
 * (db/stores/rollups.ts), never by scanning events: the counts include events pruned by
 * retention.
 * `portalId` undefined = all portals; null = events of no known portal.
 */
export async function statusFigures(
  db: Knex,
  now: Date,
  portalId?: number | null,
): Promise<StatusFigures> {
  const counts = await countsByStatus(db, portalId);
  const backlog = BACKLOG_STATUSES.reduce((n, s) => n + (counts.get(s) ?? 0), 0);
  const oldest = backlog > 0 ? await oldestPendingAt(db, portalId) : undefined;
  const since = now.getTime() - PROCESSING_WINDOW_MS;
  const times = await processingTimes(db, portalId, since, now.getTime());
  return figuresOf(counts, oldest, times, now);
}

/**
 * statusFigures of every known portal, by portal id (a portal with no events gets zeros), in
 * a few reads whatever the number of portals: `status` asked for each portal's figures in
 * turn, about eleven queries a portal, 55,000 and 9–11 s with 5,000 portals installed.
 */
export async function statusFiguresByPortal(
  db: Knex,
  now: Date,
  portalIds: readonly number[],
): Promise<Map<number, StatusFigures>> {
  const counts = await countsByStatusByPortal(db);
  const oldest = await oldestPendingByPortal(db);
  const since = now.getTime() - PROCESSING_WINDOW_MS;
  const times = await processingTimesByPortal(db, since, now.getTime());
  const none = new Map<string, number>();
  return new Map(
    portalIds.map((id) => {
      const c = counts.get(id) ?? none;
      const backlog = BACKLOG_STATUSES.reduce((n, s) => n + (c.get(s) ?? 0), 0);
      const t = times.get(id) ?? { avgMs: 0, p95Ms: 0 };
      return [id, figuresOf(c, backlog > 0 ? oldest.get(id) : undefined, t, now)];
    }),
  );
}

function figuresOf(
  counts: ReadonlyMap<string, number>,
  oldest: number | undefined,
  times: { avgMs: number; p95Ms: number },
  now: Date,
): StatusFigures {
  const f = emptyFigures();
  for (const [status, n] of counts) {
    if (status in f && status !== 'backlog') f[status as EventStatus] = n;
  }
  f.backlog = f.received + f.processing + f.unverified;
  if (oldest !== undefined) {
    f.oldestPendingSeconds = Math.max(0, Math.floor((now.getTime() - oldest) / 1000));
  }
  f.avgProcessingMs = times.avgMs;
  f.p95ProcessingMs = times.p95Ms;
  return f;
}

/**
 * Stores events outside the intake (tools, tests, imports) with their rollups; returns
 * their ids in order. The intake writes through intakeBatchPlan instead.
 */
export async function insertEvents(
  db: Knex,
  rows: ReadonlyArray<
    Partial<Omit<EventRow, 'id'>> & Pick<EventRow, 'event' | 'status' | 'received_at'>
  >,
): Promise<number[]> {
  if (rows.length === 0) return [];
  const insert = async (trx: Knex) => {
    const ids: number[] = [];
    for (const row of rows) {
      const [r] = (await trx('events').insert(row).returning('id')) as Array<
        { id: number } | number
      >;
      ids.push(Number(typeof r === 'object' ? r.id : r));
    }
    await countNewEvents(trx, ids);
    return ids;
  };
  return (db as Knex & { isTransaction?: boolean }).isTransaction
    ? insert(db)
    : db.transaction(insert);
}

/** Events of a portal waiting for its application token (only `events`, if given), oldest first. */
export async function listUnverified(
  db: Knex,
  portalId: number,
  limit = 1000,
  events?: readonly string[],
): Promise<EventRow[]> {
  const query = db('events').where({ portal_id: portalId, status: 'unverified' });
  if (events) void query.whereIn('event', events);
  const rows = (await query.orderBy('id').limit(limit)) as Record<string, unknown>[];
  return rows.map(normaliseEvent);
}

/** A unique index refused the write (SQLite or PostgreSQL). */
function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/**
 * A verified delivery that was kept unverified takes the key identical deliveries share
 * (server/intake/dedupe-key.ts). If another event holds it already (an identical delivery
 * verified meanwhile), this one is that one's duplicate: it is counted there and removed, as
 * the intake does with a repeat. A rejected event holds no key (rows of versions before
 * migration 0023 may still): it gives it up. `trx` must be a transaction: the write runs in a
 * savepoint, so an identical delivery the intake commits between the look and the write
 * (PostgreSQL, several instances) makes this one its duplicate instead of failing the whole
 * transaction. Says which happened.
 */
export async function takeSharedKey(
  trx: Knex,
  id: number,
  key: string,
): Promise<'taken' | 'duplicate'> {
  for (let attempt = 0; ; attempt++) {
    const holder = (await trx('events')
      .where({ dedupe_key: key })
      .whereNot({ id })
      .first('id', 'status')) as { id: number | string; status: string } | undefined;
    if (holder?.status === 'rejected') {
      await trx('events').where({ id: holder.id }).update({ dedupe_key: null });
    } else if (holder) {
      const self = (await trx('events').where({ id }).first('duplicates')) as
        { duplicates: number | string } | undefined;
      // Rollups before the holder: the intake's order (its rollups, then COUNT_REPEATS on the
      // holder), so the two never wait for each other on PostgreSQL.
      await changeEvents(trx, [id], (t) => t('events').where({ id }).delete());
      await trx('events')
        .where({ id: Number(holder.id) })
        .increment('duplicates', 1 + Number(self?.duplicates ?? 0));
      return 'duplicate';
    }
    try {
      await trx.transaction((sp) => sp('events').where({ id }).update({ dedupe_key: key }));
      return 'taken';
    } catch (e) {
      if (attempt > 0 || !isUniqueViolation(e)) throw e;
    }
  }
}

/** Updates one event's status fields (never its body), with its rollups; says how many rows. */
export async function updateEvent(
  db: Knex,
  id: number,
  values: Partial<
    Pick<
      EventRow,
      | 'status'
      | 'reject_reason'
      | 'auth_enc'
      | 'attempts'
      | 'last_error'
      | 'processing_started_at'
      | 'processed_at'
      | 'entity_type'
      | 'entity_id'
      | 'dedupe_key'
    >
  >,
  /** Only while the event is in this status (another caller may have moved it). */
  onlyIf?: EventStatus,
): Promise<number> {
  return changeEvents(db, [id], (trx) => {
    const q = trx('events').where({ id });
    if (onlyIf) q.where('status', onlyIf);
    return q.update(values);
  });
}

/**
 * The events of claimed `process_event` jobs become `processing`, each with its job's
 * attempts. It runs in the claim's transaction (jobs.ts `lease`): one commit for a whole
 * claim, where a commit per event before its handler cost the worker a sixth of its commits
 * (each an fsync on the main thread; test/bench/README.md#process).
 */
export async function markEventsProcessing(
  db: Knex,
  runs: ReadonlyArray<{ eventId: number; attempts: number }>,
  now: number,
): Promise<void> {
  if (runs.length === 0) return;
  const byAttempts = new Map<number, number[]>();
  for (const r of runs) {
    const ids = byAttempts.get(r.attempts);
    if (ids) ids.push(r.eventId);
    else byAttempts.set(r.attempts, [r.eventId]);
  }
  await changeEvents(
    db,
    runs.map((r) => r.eventId),
    async (trx) => {
      for (const [attempts, ids] of byAttempts) {
        await trx('events')
          .whereIn('id', ids)
          .update({
            status: 'processing',
            attempts,
            processing_started_at: trx.raw('coalesce(processing_started_at, ?)', [now]),
          });
      }
    },
  );
}

/** The event's final status (processed, skipped, failed, rejected) or back to `received` to wait for a retry. */
export async function finishEvent(
  db: Knex,
  id: number,
  values: { status: EventStatus; lastError?: string | null; at: number },
): Promise<void> {
  const final = values.status !== 'received';
  await changeEvents(db, [id], (trx) =>
    trx('events')
      .where({ id })
      .update({
        status: values.status,
        last_error: values.lastError ?? null,
        ...(final ? { processed_at: values.at } : {}),
      }),
  );
}

/** The newest stored event id (0 when there is none). */
export async function maxEventId(db: Knex): Promise<number> {
  const r = (await db('events').max({ m: 'id' }).first()) as
    { m: number | string | null } | undefined;
  return Number(r?.m ?? 0);
}
