import type { Knex } from 'knex';
import { normalise, type PortalRow } from './portals.js';

/**
 * The offline net's schedule on `portals` (migration 0030): when each portal's next drain is
 * due, the interval that set it, and the lease of the drain holding it now. Every write is
 * one conditional UPDATE, atomic on SQLite and PostgreSQL alike, so instances sharing a
 * database never drain one portal together through the net.
 */

/** Where a page of portals ended: the next page starts after it. */
export interface PageMark {
  dueAt: number;
  id: number;
}

/** Installed OAuth portals with a token: the only ones with an offline queue we can read. */
const drainable = (db: Knex) =>
  db('portals').where({ status: 'installed', auth_mode: 'oauth' }).whereNotNull('access_token_enc');

/**
 * A page of the portals whose net drain is due at `now`, earliest first, after `after`: read
 * by the index (status, auth_mode, offline_due_at, id), so the portals not due are never read.
 */
export async function duePortals(
  db: Knex,
  now: number,
  after: PageMark | undefined,
  limit: number,
): Promise<PortalRow[]> {
  const q = drainable(db).where('offline_due_at', '<=', now);
  // A row value keeps the walk on the index, in its order (SQLite 3.15+, PostgreSQL).
  if (after) q.whereRaw('(offline_due_at, id) > (?, ?)', [after.dueAt, after.id]);
  const rows = (await q
    .orderBy([{ column: 'offline_due_at' }, { column: 'id' }])
    .limit(limit)) as Record<string, unknown>[];
  return rows.map((r) => normalise(r) as PortalRow);
}

/** A page of every drainable portal by id, after `afterId` (the walk after downtime). */
export async function drainablePortals(
  db: Knex,
  afterId: number,
  limit: number,
): Promise<PortalRow[]> {
  const rows = (await drainable(db).where('id', '>', afterId).orderBy('id').limit(limit)) as Record<
    string,
    unknown
  >[];
  return rows.map((r) => normalise(r) as PortalRow);
}

/**
 * Takes the portal's drain lease until `leaseUntil` when no live lease holds it (and, with
 * `dueOnly`, when its drain is due at `now`). The due time moves to the lease's end, so a
 * holder that dies leaves the portal due again when its lease runs out. False: another
 * drain holds it, it is no longer due, or no longer drainable.
 */
export async function claimNetDrain(
  db: Knex,
  portalId: number,
  now: number,
  leaseUntil: number,
  dueOnly: boolean,
): Promise<boolean> {
  // Still drainable: the page that named it may be minutes old (8 lanes, 30 s a call), and a
  // portal that left meanwhile keeps its schedule (due at once when it is back; a tombstone
  // keeps nothing).
  const q = drainable(db)
    .where({ id: portalId })
    .andWhere((w) => w.whereNull('offline_lease_until').orWhere('offline_lease_until', '<', now));
  if (dueOnly) q.andWhere('offline_due_at', '<=', now);
  const n = await q.update({ offline_due_at: leaseUntil, offline_lease_until: leaseUntil });
  return Number(n) === 1;
}

/** Ends the lease taken with `leaseUntil` and sets the next drain (a lease lost meanwhile: nothing). */
export async function settleNetDrain(
  db: Knex,
  portalId: number,
  leaseUntil: number,
  next: { dueAt: number; intervalMs: number },
): Promise<void> {
  await db('portals').where({ id: portalId, offline_lease_until: leaseUntil }).update({
    offline_due_at: next.dueAt,
    offline_interval_ms: next.intervalMs,
    offline_lease_until: null,
  });
}

/**
 * Brings the next net drain to `next.dueAt` at the latest, without a lease (a notice was just
 * drained), and sets the interval. Never later than it was: a notice's drain skips the error
 * records, so a portal whose notices come more often than `dueAt` is away would otherwise
 * never have them read again. A tombstone (null: never due) stays as it is.
 */
export async function rescheduleNetDrain(
  db: Knex,
  portalId: number,
  next: { dueAt: number; intervalMs: number },
): Promise<void> {
  await db('portals')
    .where({ id: portalId })
    .whereNotNull('offline_due_at')
    .update({
      offline_due_at: db.raw('case when offline_due_at < ? then offline_due_at else ? end', [
        next.dueAt,
        next.dueAt,
      ]),
      offline_interval_ms: next.intervalMs,
    });
}
