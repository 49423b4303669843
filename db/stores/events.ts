import type { Knex } from 'knex';

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

/** Statuses that count as backlog (CONTRACT §4). */
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
 * Figures for `b24hooks status` and the dashboard: counts by status, backlog, oldest pending
 * age, and average / p95 processing time (receipt to finished) over the last 24 hours.
 * `portalId` undefined = all portals; null = events of no known portal.
 */
export async function statusFigures(
  db: Knex,
  now: Date,
  portalId?: number | null,
): Promise<StatusFigures> {
  const scope = (q: Knex.QueryBuilder) => {
    if (portalId === null) q.whereNull('portal_id');
    else if (portalId !== undefined) q.where('portal_id', portalId);
    return q;
  };
  const f = emptyFigures();
  const counts = (await scope(
    db('events').select('status').count({ n: '*' }).groupBy('status'),
  )) as {
    status: EventStatus;
    n: number | string;
  }[];
  for (const c of counts) if (c.status in f) f[c.status] = Number(c.n);
  f.backlog = f.received + f.processing + f.unverified;

  const oldest = (await scope(
    db('events').whereIn('status', BACKLOG_STATUSES).min({ t: 'received_at' }),
  ).first()) as { t: number | string | null } | undefined;
  if (oldest?.t !== null && oldest?.t !== undefined) {
    f.oldestPendingSeconds = Math.max(0, Math.floor((now.getTime() - Number(oldest.t)) / 1000));
  }

  const since = now.getTime() - PROCESSING_WINDOW_MS;
  const done = () =>
    scope(db('events').where('status', 'processed').where('processed_at', '>=', since));
  const agg = (await done()
    .count({ n: '*' })
    .avg({ a: db.raw('processed_at - received_at') })
    .first()) as { n: number | string; a: number | string | null } | undefined;
  const n = Number(agg?.n ?? 0);
  if (n > 0) {
    f.avgProcessingMs = Math.round(Number(agg?.a ?? 0));
    const offset = Math.max(0, Math.ceil(0.95 * n) - 1);
    const p = (await done()
      .select({ d: db.raw('processed_at - received_at') })
      .orderByRaw('processed_at - received_at')
      .offset(offset)
      .limit(1)
      .first()) as { d: number | string } | undefined;
    f.p95ProcessingMs = Math.round(Number(p?.d ?? 0));
  }
  return f;
}

/** Events of a portal waiting for its application token (only `event`, if given), oldest first. */
export async function listUnverified(
  db: Knex,
  portalId: number,
  limit = 1000,
  event?: string,
): Promise<EventRow[]> {
  const rows = (await db('events')
    .where({ portal_id: portalId, status: 'unverified', ...(event ? { event } : {}) })
    .orderBy('id')
    .limit(limit)) as Record<string, unknown>[];
  return rows.map(normaliseEvent);
}

/** Updates one event's status fields (never its body). */
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
    >
  >,
): Promise<void> {
  await db('events').where({ id }).update(values);
}

/** A job for this event started: the event is `processing`. */
export async function markEventProcessing(
  db: Knex,
  id: number,
  attempts: number,
  now: number,
): Promise<void> {
  await db('events')
    .where({ id })
    .update({
      status: 'processing',
      attempts,
      processing_started_at: db.raw('coalesce(processing_started_at, ?)', [now]),
    });
}

/** The event's final status (processed, skipped, failed, rejected) or back to `received` to wait for a retry. */
export async function finishEvent(
  db: Knex,
  id: number,
  values: { status: EventStatus; lastError?: string | null; at: number },
): Promise<void> {
  const final = values.status !== 'received';
  await db('events')
    .where({ id })
    .update({
      status: values.status,
      last_error: values.lastError ?? null,
      ...(final ? { processed_at: values.at } : {}),
    });
}

/** The newest stored event id (0 when there is none). */
export async function maxEventId(db: Knex): Promise<number> {
  const r = (await db('events').max({ m: 'id' }).first()) as
    { m: number | string | null } | undefined;
  return Number(r?.m ?? 0);
}
