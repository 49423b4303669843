import type { Knex } from 'knex';
import { isPg } from '../connect.js';
import { LOCK } from '../locks.js';
import {
  listRollups,
  pruneRollups,
  recountRollups,
  rollupStatements,
  type RollupRow,
} from './rollups.js';

const KEY = ['kind', 'grain', 'portal_id', 'bucket', 'k1', 'k2'] as const;
const keyOf = (r: RollupRow) => KEY.map((k) => String(r[k])).join('\u0000');

/**
 * What turns `stored` into `counted` when added by the rollups' upsert (counts and sums add,
 * a maximum takes the larger): rows whose figures already agree are left out.
 */
export function rollupCorrection(
  counted: readonly RollupRow[],
  stored: readonly RollupRow[],
): RollupRow[] {
  const before = new Map(stored.map((r) => [keyOf(r), r]));
  const out: RollupRow[] = [];
  for (const c of counted) {
    const s = before.get(keyOf(c));
    before.delete(keyOf(c));
    const row = { ...c, n: c.n - (s?.n ?? 0), s: c.s - (s?.s ?? 0) };
    if (row.n !== 0 || row.s !== 0 || row.mx > (s?.mx ?? 0)) out.push(row);
  }
  for (const s of before.values()) {
    if (s.n !== 0 || s.s !== 0) out.push({ ...s, n: -s.n, s: -s.s, mx: 0 });
  }
  return out;
}

/**
 * Counts the events stored before the rollups existed (migration 0028 marks that count as
 * pending), once, however many instances start; returns whether this call counted.
 * `beforeCount` runs first when the count is pending (db/migrate.ts).
 *
 * On PostgreSQL it runs while instances serve and change events: it reads the events and
 * the rollups in one snapshot (REPEATABLE READ), so the difference between its count and
 * the rollups at that snapshot is exactly what the rollups lack, whatever writers added
 * since (each adds its own change, in the transaction that makes it). That difference is
 * added in a second transaction, which also removes the mark: a second instance that
 * counted too finds the mark gone and adds nothing. An advisory try-lock keeps the others
 * from counting meanwhile without making them wait. On SQLite (one process) it all runs in
 * one transaction, at start, before the app serves.
 */
export async function recountPendingRollups(
  db: Knex,
  now: number,
  beforeCount?: (db: Knex) => Promise<unknown>,
): Promise<boolean> {
  const pending = async (q: Knex) => (await q('rollup_recounts').first('id')) !== undefined;
  if (!(await pending(db))) return false;
  // Idempotent (it fills in only what is missing): two instances may both run it.
  await beforeCount?.(db);
  if (!isPg(db)) {
    return db.transaction(async (trx) => {
      if (!(await pending(trx))) return false;
      const fix = rollupCorrection(await recountRollups(trx), await listRollups(trx));
      await finish(trx, fix, now);
      return true;
    });
  }
  const snapshot = await db.transaction(
    async (trx) => {
      const got = (await trx.raw('select pg_try_advisory_xact_lock(?, 0) as got', [
        LOCK.rollupRecount,
      ])) as { rows: Array<{ got: boolean }> };
      if (!got.rows[0]?.got || !(await pending(trx))) return undefined;
      return rollupCorrection(await recountRollups(trx), await listRollups(trx));
    },
    { isolationLevel: 'repeatable read' },
  );
  if (!snapshot) return false;
  return db.transaction(async (trx) => {
    // Row-locked: of two counts finishing together, the second finds the mark gone.
    if (Number(await trx('rollup_recounts').where('id', 1).delete()) === 0) return false;
    await finish(trx, snapshot, now);
    return true;
  });
}

async function finish(trx: Knex, fix: readonly RollupRow[], now: number): Promise<void> {
  await trx('rollup_recounts').delete();
  for (const s of rollupStatements(fix)) await trx.raw(s.sql, s.bindings);
  // Rows already past the rollups' horizon go at once (as after `rollups rebuild`).
  await pruneRollups(trx, now);
}
