import type { Knex } from 'knex';
import { isPg } from './connect.js';
import { LOCK } from './locks.js';
import { migrations } from './migrations/index.js';
import { recountPendingRollups } from './stores/rollup-recount.js';

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
 * The migrations this database lacks, by name, applying none (a database without the
 * migrations table lacks them all): the CLI's read-only commands refuse an older database
 * instead of upgrading it unasked.
 */
export async function pendingMigrations(db: Knex): Promise<string[]> {
  if (!(await db.schema.hasTable('knex_migrations'))) return migrations.map((m) => m.name);
  const done = new Set(((await db('knex_migrations').pluck('name')) as unknown[]).map(String));
  return migrations.filter((m) => !done.has(m.name)).map((m) => m.name);
}

/**
 * Applies every pending migration (each in a transaction); returns the names applied. Then,
 * after an upgrade across the rollups (0016), counts the events already stored, once
 * (stores/rollup-recount.ts); a start stopped during that count counts at the next one.
 *
 * On PostgreSQL several instances may start at once. knex's own lock row makes all but one
 * of them fail ("Migration table is already locked"), and two of them creating
 * `knex_migrations` together can fail too; so the migrations run under an advisory lock,
 * taken on a connection of its own: the others wait for it, then find nothing left to apply.
 * The count runs after that lock is released: it reads the whole log (minutes on millions of
 * events), and the others, which used to wait for it too without listening, failed their
 * health checks. They start at once now; only the counting instance waits for its count.
 */
export async function migrateToLatest(
  db: Knex,
  opts: {
    /**
     * Runs before that count, only when it is pending: what the count needs filled in first
     * that the database layer cannot work out (rule matches stored before they kept their
     * rule's SLA take it from the rules: server/rules/sla-rules.ts backfillMatchSla).
     */
    beforeRecount?: (db: Knex) => Promise<unknown>;
  } = {},
): Promise<string[]> {
  const applied = isPg(db)
    ? await db.transaction(async (trx) => {
        await trx.raw('select pg_advisory_xact_lock(?, 0)', [LOCK.migrate]);
        return latest(db);
      })
    : await latest(db);
  await recountPendingRollups(db, Date.now(), opts.beforeRecount);
  return applied;
}
