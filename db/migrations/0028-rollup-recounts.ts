import type { Knex } from 'knex';

/**
 * Whether the events stored before the rollups (0016) still await their count
 * (db/migrate.ts `recountPendingRollups`). The count ran inside the migration lock, so every
 * other instance starting meanwhile waited for the whole read of the log, not listening, past
 * its health check; it now runs after the lock and while the instances serve, and this row
 * says that it has not finished (a start stopped during it counts again at the next one).
 *
 * Set here when the rollups are empty while events are stored: every event is counted in the
 * transaction that stores it, so that state means an upgrade across 0016 whose count has not
 * finished (the test 0016's recount used until now).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rollup_recounts', (t) => {
    /** Always 1: one recount of the whole log. */
    t.integer('id').primary();
    t.bigInteger('since').notNullable();
  });
  const counted = (await knex('rollups').first('kind')) !== undefined;
  const stored = (await knex('events').first('id')) !== undefined;
  if (!counted && stored) await knex('rollup_recounts').insert({ id: 1, since: Date.now() });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('rollup_recounts');
}
