import type { Knex } from 'knex';
import { changeEvents } from './rollups.js';

/**
 * Deliveries kept `unverified` (they arrived before their portal's application token was
 * known): what the intake's per-portal cap counts, the proof job's candidates, and expiry.
 */

/** How many unverified deliveries a portal holds, their stored bytes, and how many are installs. */
export interface UnverifiedLoad {
  count: number;
  bytes: number;
  installs: number;
}

export async function unverifiedLoad(db: Knex, portalId: number): Promise<UnverifiedLoad> {
  const row = (await db('events')
    .where({ portal_id: portalId, status: 'unverified' })
    .first(
      db.raw('count(*) as n'),
      db.raw('coalesce(sum(length(body)), 0) as b'),
      db.raw(
        `coalesce(sum(case when event in ('ONAPPINSTALL', 'ONAPPTEST') then 1 else 0 end), 0) as i`,
      ),
    )) as { n: number | string; b: number | string; i: number | string } | undefined;
  return { count: Number(row?.n ?? 0), bytes: Number(row?.b ?? 0), installs: Number(row?.i ?? 0) };
}

/**
 * Unverified deliveries received before `before` are rejected as `unverified_expired` (their
 * token was never confirmed in time), or with `reason`. They stay listed (status, reason)
 * and their delivered tokens are erased; returns how many were rejected.
 */
export async function expireUnverified(
  db: Knex,
  portalId: number,
  before: number,
  now: number,
  reason = 'unverified_expired',
): Promise<number> {
  const ids = (
    (await db('events')
      .where({ portal_id: portalId, status: 'unverified' })
      .where('received_at', '<', before)
      .pluck('id')) as Array<number | string>
  ).map(Number);
  if (ids.length === 0) return 0;
  // Through changeEvents: the status change moves the rollups (db/stores/rollups.ts).
  return changeEvents(db, ids, async (trx) => {
    let n = 0;
    for (let i = 0; i < ids.length; i += 500) {
      n += await trx('events')
        .whereIn('id', ids.slice(i, i + 500))
        .where({ status: 'unverified' })
        .update({
          status: 'rejected',
          reject_reason: reason,
          auth_enc: null,
          dedupe_key: null,
          processed_at: now,
        });
    }
    return n;
  });
}
