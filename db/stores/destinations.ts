import type { Knex } from 'knex';

/** A destination's circuit breaker (migration 0015). */
export interface DestinationRow {
  key: string;
  state: 'closed' | 'open';
  failures: number;
  cooldown_ms: number;
  opened_at: number | null;
  retry_at: number | null;
  last_error: string | null;
  updated_at: number;
  /**
   * Whose steps failed, how often, in a shared destination's current run of failures
   * (migration 0036; server/queue/destinations.ts): `'3:5,7:1'`, `'*'` for the operator's.
   */
  streak_portals?: string | null;
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

function normalise(r: Record<string, unknown>): DestinationRow {
  return {
    ...(r as unknown as DestinationRow),
    failures: Number(r.failures),
    cooldown_ms: Number(r.cooldown_ms),
    opened_at: num(r.opened_at),
    retry_at: num(r.retry_at),
    updated_at: Number(r.updated_at),
  };
}

export async function getDestination(db: Knex, key: string): Promise<DestinationRow | undefined> {
  const r = (await db('destinations').where({ key }).first()) as
    Record<string, unknown> | undefined;
  return r ? normalise(r) : undefined;
}

/** Writes a destination's whole state (insert or replace). */
export async function saveDestination(db: Knex, row: DestinationRow): Promise<void> {
  await db('destinations').insert(row).onConflict('key').merge();
}

/**
 * Takes the probe of an open destination whose cool-down is over: moves `retry_at` to
 * `leaseUntil` if it is still `dueAt` or earlier. True for the one caller (of every instance)
 * that moved it; the others keep waiting.
 */
export async function takeProbe(
  db: Knex,
  key: string,
  now: number,
  leaseUntil: number,
): Promise<boolean> {
  const n = await db('destinations')
    .where({ key, state: 'open' })
    .where('retry_at', '<=', now)
    .update({ retry_at: leaseUntil, updated_at: now });
  return n === 1;
}

/**
 * Erasure: the circuit state of a portal's own REST endpoint (`rest:<domain>`), of the hosts
 * its `http` steps named (`http:<host>#<portal id>`) and of its own use of the operator's
 * channels (`sms:<host>#<portal id>`; server/queue/destinations.ts).
 */
export async function deletePortalDestinations(db: Knex, portalId: number): Promise<number> {
  const row = (await db('portals').where('id', portalId).first('domain')) as
    { domain: string | null } | undefined;
  const own = await db('destinations').where('key', 'like', `%#${portalId}`).delete();
  if (!row?.domain) return own;
  return own + (await db('destinations').where('key', `rest:${row.domain}`).delete());
}

/** A success: the destination is closed again, its failure count reset. */
export async function closeDestination(db: Knex, key: string, now: number): Promise<void> {
  await db('destinations')
    .where({ key })
    .where((w) => w.where('failures', '>', 0).orWhereNot('state', 'closed'))
    .update({
      state: 'closed',
      failures: 0,
      cooldown_ms: 0,
      opened_at: null,
      retry_at: null,
      streak_portals: null,
      updated_at: now,
    });
}

/**
 * Open destinations with how many jobs wait for each (dashboard, status, metrics, alerts).
 * With `portalId`, only those that jobs of that portal wait for, counting only its jobs (a
 * portal never sees another one's destinations).
 */
export async function openDestinations(
  db: Knex,
  portalId?: number,
): Promise<Array<DestinationRow & { waiting: number; waitingByPortal: Map<number, number> }>> {
  const rows = (
    (await db('destinations').where({ state: 'open' }).orderBy('key')) as Record<string, unknown>[]
  ).map(normalise);
  if (rows.length === 0) return [];
  const q = db('jobs')
    .whereIn(
      'waiting_for',
      rows.map((r) => r.key),
    )
    .where('status', 'pending')
    .groupBy('waiting_for', 'portal_id')
    .select('waiting_for', 'portal_id')
    .count({ n: '*' });
  if (portalId !== undefined) q.where('portal_id', portalId);
  const counts = (await q) as Array<{
    waiting_for: string;
    portal_id: number | string | null;
    n: number | string;
  }>;
  const by = new Map<string, Map<number, number>>();
  for (const c of counts) {
    const m = by.get(c.waiting_for) ?? new Map<number, number>();
    m.set(Number(c.portal_id ?? 0), Number(c.n));
    by.set(c.waiting_for, m);
  }
  return rows
    .map((r) => {
      const waitingByPortal = by.get(r.key) ?? new Map<number, number>();
      let waiting = 0;
      for (const n of waitingByPortal.values()) waiting += n;
      return { ...r, waiting, waitingByPortal };
    })
    .filter((r) => portalId === undefined || r.waiting > 0);
}

/** What status --json, the dashboard and alerts say about an open destination. */
export function destinationJson(r: DestinationRow & { waiting: number }) {
  return {
    destination: r.key,
    failures: r.failures,
    openedAt: r.opened_at === null ? null : new Date(r.opened_at).toISOString(),
    nextProbeAt: r.retry_at === null ? null : new Date(r.retry_at).toISOString(),
    waitingJobs: r.waiting,
    lastError: r.last_error,
  };
}
