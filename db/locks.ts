import type { Knex } from 'knex';

/**
 * PostgreSQL advisory locks of b24hooks (several instances on one database). Each
 * lock is the pair (namespace, id); the namespaces are arbitrary constants that other
 * applications on the same database are unlikely to pick. SQLite has a single writer and
 * one process per file, so it needs none of them.
 */
export const LOCK = {
  /** Around `migrate.latest`: instances that start together wait for the first one. */
  migrate: 0x6234_0001,
  // 0x6234_0002 was the per-portal refresh lock; a lease in `portals` replaced it
  // (migration 0011), as it also holds on SQLite.
  /** Per instance (id = its random key), held for its whole life: proof that it is alive. */
  instance: 0x6234_0003,
  /** One alert monitor across instances (id = 0): the holder checks, the others wait. */
  alerts: 0x6234_0004,
  /** One retention prune across instances (id = 0). */
  retention: 0x6234_0014,
  /** One count of the events stored before the rollups (id = 0); the others do not wait. */
  rollupRecount: 0x6234_0016,
} as const;

/**
 * Runs `work` inside a transaction that first takes the transaction-level lock (ns, id);
 * PostgreSQL releases it at commit or rollback, so a crash never leaves it held.
 */
export async function withXactLock<T>(
  db: Knex,
  ns: number,
  id: number,
  work: (trx: Knex.Transaction) => Promise<T>,
): Promise<T> {
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?, ?)', [ns, id]);
    return work(trx);
  });
}
