import type { Knex } from 'knex';

/**
 * A portal's payment lapse (migration 0042): Bitrix24 skips every handler of an app whose
 * payment expired, so its changes of that time never arrive. Marked when the lapse is
 * noticed (a call or refresh refused PAYMENT_REQUIRED), swept once the portal takes the app
 * again (server/recovery/lapses.ts).
 */

/**
 * Marks the lapse's start, once: the portal's last delivery before it was noticed (the lapse
 * began after that; `now` when it never sent one). Its latest event by the
 * (portal_id, id) index, one row.
 */
export async function markLapse(db: Knex, portalId: number, now: number): Promise<void> {
  // Not a sweep's own rows (a lapse met again during its sweep would move its start to now).
  const last = (await db('events')
    .where({ portal_id: portalId })
    .whereNot('source', 'sweep')
    .orderBy('id', 'desc')
    .first('received_at')) as { received_at: number | string } | undefined;
  const since = last ? Math.min(Number(last.received_at), now) : now;
  await db('portals')
    .where({ id: portalId })
    .whereNull('lapse_since')
    .update({ lapse_since: since });
}

export interface ResumedLapse {
  id: number;
  member_id: string;
  lapse_since: number;
}

/** Portals installed and no longer paused with a lapse still to sweep (index portals_lapse_since). */
export async function resumedLapses(db: Knex): Promise<ResumedLapse[]> {
  // `> 0` (not `is not null`) so that SQLite reads the index, not the table.
  const rows = (await db('portals')
    .where('lapse_since', '>', 0)
    .whereNull('pause_reason')
    .where({ status: 'installed' })
    .select('id', 'member_id', 'lapse_since')) as Array<Record<string, unknown>>;
  return rows.map((r) => ({
    id: Number(r.id),
    member_id: String(r.member_id),
    lapse_since: Number(r.lapse_since),
  }));
}

/** Takes a lapse to sweep: true for the one caller (of every instance) whose update cleared it. */
export async function claimLapse(db: Knex, lapse: ResumedLapse): Promise<boolean> {
  const n = await db('portals')
    .where({ id: lapse.id, lapse_since: lapse.lapse_since })
    .update({ lapse_since: null });
  return Number(n) === 1;
}

/** Puts a claimed lapse back (its sweep could not start now): the next look takes it again. */
export async function releaseLapse(db: Knex, lapse: ResumedLapse): Promise<void> {
  await db('portals')
    .where({ id: lapse.id })
    .whereNull('lapse_since')
    .update({ lapse_since: lapse.lapse_since });
}
