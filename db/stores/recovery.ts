import type { Knex } from 'knex';

/** The heartbeat every instance on one database shares (server/README.md#loss-recovery). */
export const APP_HEARTBEAT = 'app';

export interface HeartbeatRow {
  name: string;
  beat_at: number;
  started_at: number;
  stopped_at: number | null;
}

const num = (v: unknown): number => Number(v ?? 0);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export async function getHeartbeat(
  db: Knex,
  name = APP_HEARTBEAT,
): Promise<HeartbeatRow | undefined> {
  const r = (await db('heartbeats').where({ name }).first()) as Record<string, unknown> | undefined;
  if (!r) return undefined;
  return {
    name: String(r.name),
    beat_at: num(r.beat_at),
    started_at: num(r.started_at),
    stopped_at: numOrNull(r.stopped_at),
  };
}

/** Records that the app is alive now (clears a clean-stop mark). */
export async function beat(db: Knex, now: number, startedAt: number, name = APP_HEARTBEAT) {
  await db('heartbeats')
    .insert({ name, beat_at: now, started_at: startedAt, stopped_at: null })
    .onConflict('name')
    .merge(['beat_at', 'started_at', 'stopped_at']);
}

/** A clean stop: the last beat is now, and the stop is marked. */
export async function markStopped(db: Knex, now: number, name = APP_HEARTBEAT) {
  await db('heartbeats').where({ name }).update({ beat_at: now, stopped_at: now });
}

/** One portal's part of a sweep. */
export interface PortalCoverage {
  memberId: string;
  domain: string;
  /** done | failed | skipped (not an installed OAuth/webhook portal, or nothing watched). */
  status: 'done' | 'failed' | 'skipped';
  /** Entities the portal listed as changed since the gap began. */
  listed: number;
  /** Reconcile events stored for them. */
  enqueued: number;
  /** Entity types swept (`deal`, `dynamic:128`, …). */
  types: string[];
  /** Watched types the sweep cannot list (tasks, activities, …). */
  unsupported?: string[];
  error?: string;
}

/** `resume`: a portal's payment lapse, swept when its plan takes the app back (lapses.ts). */
export type GapTrigger = 'start' | 'cli' | 'ui' | 'resume';
export type GapStatus = 'running' | 'done' | 'partial' | 'failed';

export interface GapRow {
  id: number;
  trigger: GapTrigger;
  started_at: number;
  ended_at: number;
  member_id: string | null;
  requested_by: string | null;
  status: GapStatus;
  listed: number;
  enqueued: number;
  portals: PortalCoverage[];
  error: string | null;
  sweep_started_at: number;
  sweep_finished_at: number | null;
  /** The host and pid of the process running the sweep (null in rows before 0031). */
  sweep_host: string | null;
  sweep_pid: number | null;
}

function gapOf(r: Record<string, unknown>): GapRow {
  let portals: PortalCoverage[] = [];
  try {
    const v = JSON.parse(String(r.portals ?? '[]')) as unknown;
    if (Array.isArray(v)) portals = v as PortalCoverage[];
  } catch {
    portals = [];
  }
  return {
    id: num(r.id),
    trigger: String(r.trigger) as GapTrigger,
    started_at: num(r.started_at),
    ended_at: num(r.ended_at),
    member_id: (r.member_id as string | null) ?? null,
    requested_by: (r.requested_by as string | null) ?? null,
    status: String(r.status) as GapStatus,
    listed: num(r.listed),
    enqueued: num(r.enqueued),
    portals,
    error: (r.error as string | null) ?? null,
    sweep_started_at: num(r.sweep_started_at),
    sweep_finished_at: numOrNull(r.sweep_finished_at),
    sweep_host: (r.sweep_host as string | null) ?? null,
    sweep_pid: numOrNull(r.sweep_pid),
  };
}

export async function insertGap(
  db: Knex,
  g: Pick<GapRow, 'trigger' | 'started_at' | 'ended_at' | 'member_id' | 'requested_by'> &
    Partial<Pick<GapRow, 'sweep_host' | 'sweep_pid'>> & {
      now: number;
    },
): Promise<number> {
  const [row] = (await db('recovery_gaps')
    .insert({
      trigger: g.trigger,
      started_at: g.started_at,
      ended_at: g.ended_at,
      member_id: g.member_id,
      requested_by: g.requested_by,
      status: 'running',
      listed: 0,
      enqueued: 0,
      portals: '[]',
      sweep_started_at: g.now,
      sweep_host: g.sweep_host ?? null,
      sweep_pid: g.sweep_pid ?? null,
    })
    .returning('id')) as Array<{ id: number } | number>;
  return typeof row === 'object' ? Number(row.id) : Number(row);
}

/** Progress or the end of a sweep: totals and per-portal coverage. */
export async function updateGap(
  db: Knex,
  id: number,
  patch: Partial<Pick<GapRow, 'status' | 'listed' | 'enqueued' | 'portals' | 'error'>> & {
    finishedAt?: number;
  },
): Promise<void> {
  const row: Record<string, unknown> = {};
  if (patch.status !== undefined) row.status = patch.status;
  if (patch.listed !== undefined) row.listed = patch.listed;
  if (patch.enqueued !== undefined) row.enqueued = patch.enqueued;
  if (patch.portals !== undefined) row.portals = JSON.stringify(patch.portals);
  if (patch.error !== undefined) row.error = patch.error;
  if (patch.finishedAt !== undefined) row.sweep_finished_at = patch.finishedAt;
  await db('recovery_gaps').where({ id }).update(row);
}

export async function getGap(db: Knex, id: number): Promise<GapRow | undefined> {
  const r = (await db('recovery_gaps').where({ id }).first()) as
    Record<string, unknown> | undefined;
  return r ? gapOf(r) : undefined;
}

/**
 * The newest sweep, or the newest that covered `memberId` (a sweep of all portals, or of
 * that one).
 */
export async function lastGap(db: Knex, memberId?: string): Promise<GapRow | undefined> {
  const q = db('recovery_gaps').orderBy('id', 'desc');
  if (memberId !== undefined)
    q.where((w) => w.whereNull('member_id').orWhere({ member_id: memberId }));
  const r = (await q.first()) as Record<string, unknown> | undefined;
  return r ? gapOf(r) : undefined;
}

/** The sweeps still running that started after `since` (across processes too), newest first. */
export async function runningGaps(db: Knex, since: number): Promise<GapRow[]> {
  const rows = (await db('recovery_gaps')
    .where({ status: 'running' })
    .where('sweep_started_at', '>=', since)
    .orderBy('id', 'desc')) as Array<Record<string, unknown>>;
  return rows.map(gapOf);
}

/**
 * Sweeps left `running` by a process that died: they ended without finishing. `triggers`
 * limits it to sweeps of those origins (a starting server owns `start` and `ui` sweeps).
 */
export async function abandonGaps(
  db: Knex,
  before: number,
  now: number,
  triggers?: readonly GapTrigger[],
): Promise<void> {
  const q = db('recovery_gaps').where({ status: 'running' }).where('sweep_started_at', '<', before);
  if (triggers) q.whereIn('trigger', triggers);
  await q.update({ status: 'failed', error: 'interrupted', sweep_finished_at: now });
}

/** Events stored by the offline drain and by sweeps, per source (from the rollups). */
export async function recoveredCounts(
  db: Knex,
  portalId?: number,
): Promise<{ offline: number; sweep: number }> {
  const q = db('rollups')
    .where({ kind: 'src', grain: 'a' })
    .whereIn('k1', ['offline', 'sweep'])
    .select({ source: 'k1' })
    .sum({ n: 'n' })
    .groupBy('k1');
  if (portalId !== undefined) q.where('portal_id', portalId);
  const rows = (await q) as Array<{ source: string; n: number | string | null }>;
  const out = { offline: 0, sweep: 0 };
  for (const r of rows)
    if (r.source === 'offline' || r.source === 'sweep') out[r.source] = Number(r.n ?? 0);
  return out;
}

/** recoveredCounts of every portal, by portal id (absent: none recovered), in one read. */
export async function recoveredCountsByPortal(
  db: Knex,
): Promise<Map<number, { offline: number; sweep: number }>> {
  const rows = (await db('rollups')
    .where({ kind: 'src', grain: 'a' })
    .whereIn('k1', ['offline', 'sweep'])
    .select({ p: 'portal_id', source: 'k1' })
    .sum({ n: 'n' })
    .groupBy('portal_id', 'k1')) as Array<{
    p: number | string;
    source: string;
    n: number | string | null;
  }>;
  const out = new Map<number, { offline: number; sweep: number }>();
  for (const r of rows) {
    const counts = out.get(Number(r.p)) ?? { offline: 0, sweep: 0 };
    if (r.source === 'offline' || r.source === 'sweep') counts[r.source] = Number(r.n ?? 0);
    out.set(Number(r.p), counts);
  }
  return out;
}

/**
 * Statuses of an event that has taken up (or will take up) its entity's state. A `failed`
 * one too: it is shown, alerted on and can be replayed, and a recovered copy of its change
 * (a new event, new idempotency keys) sent again every step of its rules that had succeeded
 * (an http step whose sibling rule failed for good went out twice).
 */
const COVERING = ['processed', 'skipped', 'failed', 'received', 'processing'] as const;

/**
 * For each entity, the newest receipt (ms) of an event of ours that covers a change made
 * before it: every event is processed with a read of its entity started after the event was
 * stored (the read cache never serves an event a read older than itself), so one received
 * at or after a change, done or still due, has seen or will see that change.
 */
export async function latestCoveringReceipt(
  db: Knex,
  portalId: number,
  entityType: string,
  ids: readonly string[],
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (ids.length === 0) return out;
  const rows = (await db('events')
    .where({ portal_id: portalId, entity_type: entityType })
    .whereIn('entity_id', [...ids])
    .whereIn('status', COVERING)
    .groupBy('entity_id')
    .select('entity_id')
    .max({ latest: 'received_at' })) as Array<{
    entity_id: string;
    latest: number | string | null;
  }>;
  for (const r of rows) {
    if (r.latest !== null) out.set(String(r.entity_id), Number(r.latest));
  }
  // An erasure covers every change made before it (migration 0034): its events are gone on
  // purpose, not missed.
  const erased = (await db('erased_entities')
    .where('portal_id', portalId)
    .where((q) =>
      q
        .where((w) => w.where('entity_type', entityType).whereIn('entity_id', [...ids]))
        .orWhere((w) => w.where({ entity_type: '*', entity_id: '*' })),
    )
    .select('entity_type', 'entity_id', 'erased_at')) as Array<{
    entity_type: string;
    entity_id: string;
    erased_at: number | string;
  }>;
  const later = (id: string, at: number) => {
    if (at > (out.get(id) ?? -Infinity)) out.set(id, at);
  };
  for (const e of erased) {
    if (e.entity_type === '*') for (const id of ids) later(id, Number(e.erased_at));
    else later(String(e.entity_id), Number(e.erased_at));
  }
  return out;
}

/** The snapshots of several entities of one type (absent: never seen). */
export async function snapshotsOf(
  db: Knex,
  portalId: number,
  entityType: string,
  ids: readonly string[],
): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  if (ids.length === 0) return out;
  const rows = (await db('entity_snapshots')
    .where({ portal_id: portalId, entity_type: entityType })
    .whereIn('entity_id', [...ids])
    .select('entity_id', 'fields')) as Array<{ entity_id: string; fields: string }>;
  for (const r of rows) {
    try {
      out.set(String(r.entity_id), JSON.parse(r.fields) as Record<string, unknown>);
    } catch {
      out.set(String(r.entity_id), {});
    }
  }
  return out;
}
