import type { Knex } from 'knex';

/**
 * Loss recovery (server/README.md#loss-recovery): a heartbeat row the running app refreshes every
 * minute, so a start can tell how long nobody was listening, and one row per downtime sweep (the
 * gap it covered, what it listed and enqueued, per portal).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('heartbeats', (t) => {
    /** `app`: one row shared by every instance on this database. */
    t.string('name', 32).primary();
    t.bigInteger('beat_at').notNullable();
    /** When the instance that wrote the last beat started. */
    t.bigInteger('started_at').notNullable();
    /** Set by a clean stop; cleared by the next beat. */
    t.bigInteger('stopped_at').nullable();
  });
  await knex.schema.createTable('recovery_gaps', (t) => {
    t.increments('id').primary();
    /** start (a gap found at start), cli or ui (an admin's request). */
    t.string('trigger', 16).notNullable();
    /** The gap: entities changed from `started_at` on were looked at. */
    t.bigInteger('started_at').notNullable();
    t.bigInteger('ended_at').notNullable();
    /** Only this portal (an admin's request for one portal); null for all. */
    t.string('member_id', 64).nullable();
    t.string('requested_by', 128).nullable();
    /** running | done | partial (some portals failed) | failed */
    t.string('status', 16).notNullable();
    t.integer('listed').notNullable().defaultTo(0);
    t.integer('enqueued').notNullable().defaultTo(0);
    /** JSON: per portal `{memberId, status, listed, enqueued, types, error?}`. */
    t.text('portals').nullable();
    t.text('error').nullable();
    t.bigInteger('sweep_started_at').notNullable();
    t.bigInteger('sweep_finished_at').nullable();
    t.index(['sweep_started_at'], 'recovery_gaps_started');
  });
  // Recovered events per portal for the dashboard and `status`. Partial: online deliveries
  // (nearly all rows) never enter it, so the intake pays nothing for it.
  await knex.schema.alterTable('events', (t) => {
    t.index(['portal_id', 'source'], 'events_recovered', {
      predicate: knex.whereRaw("source <> 'online'"),
    });
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => t.dropIndex([], 'events_recovered'));
  await knex.schema.dropTableIfExists('recovery_gaps');
  await knex.schema.dropTableIfExists('heartbeats');
}
