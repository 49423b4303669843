import type { Knex } from 'knex';
import { isPg } from './connect.js';
import { LOCK } from './locks.js';
import { migrations } from './migrations/index.js';
import { rebuildRollups } from './stores/rollups.js';

/** A static migration source: no directory globbing, so it works from dist/ and from ts-jest. */
const source: Knex.MigrationSource<{ name: string; module: Knex.Migration }> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m.module,
};

async function latest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({
    migrationSource: source,
    tableName: 'knex_migrations',
  })) as [number, string[]];
  return applied;
}

/**
 * Applies every pending migration (each in a transaction); returns the names applied.
 *
 * On PostgreSQL several instances may start at once. knex's own lock row makes all but one
 * of them fail ("Migration table is already locked"), and two of them creating
 * `knex_migrations` together can fail too; so the whole run holds an advisory lock, taken on
 * a connection of its own: the others wait for it, then find nothing left to apply.
 */
export async function migrateToLatest(db: Knex): Promise<string[]> {
  if (!isPg(db)) return latestCounted(db);
  return db.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?, 0)', [LOCK.migrate]);
    return latestCounted(db);
  });
}

/**
 * Migration 0016 created the rollups empty. A database that takes it now, coming from an
 * older version, already holds events: without a recount `status`, the dashboard, /metrics
 * and the backlog alerts counted none of them (and pending ones would be uncounted below
 * zero once processed). So a run ends with the recount `rollups rebuild` does, over the final
 * schema, whenever the rollups are empty while events are stored: every event is counted in
 * the same transaction that stores it, and all-time rows are never pruned, so that state
 * means an upgrade across 0016 whose count has not finished. Checking the state rather than
 * what this run applied, a start killed (or failing) during a long count on a large log
 * counts at the next start instead of leaving every figure at zero for good.
 */
async function latestCounted(db: Knex): Promise<string[]> {
  const applied = await latest(db);
  if (await uncounted(db)) await rebuildRollups(db, Date.now());
  return applied;
}

/** Events stored and not one rollup row: two single-row reads. */
async function uncounted(db: Knex): Promise<boolean> {
  if (await db('rollups').first('kind')) return false;
  return (await db('events').first('id')) !== undefined;
}
