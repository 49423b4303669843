import type { Knex } from 'knex';

/**
 * Several instances: each portal's REST budget is one leaky bucket shared by every
 * instance on the database (server/bitrix/shared-rate-limit.ts), not one per process.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_buckets', (t) => {
    /** The portal's member_id. */
    t.string('key', 64).primary();
    /** Requests in the bucket at `at`, reservations still waiting included. */
    t.double('level').notNullable();
    /** Milliseconds since the epoch, on the database's clock (one clock for all instances). */
    t.bigInteger('at').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('rate_buckets');
}
