import type { Knex } from 'knex';

/**
 * Replays started from the UI (preview → confirm → progress → result): which events
 * each one queued, so its progress page can count them however long it runs and whichever
 * session asks.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('replay_runs', (t) => {
    t.increments('id').primary();
    t.integer('portal_id').notNullable();
    /** The Bitrix24 user (admin) who confirmed it. */
    t.integer('user_id').notNullable();
    /** The form as submitted (from, to, event, status), as JSON. */
    t.text('filter').notNullable();
    t.boolean('rerun_succeeded').notNullable();
    t.integer('matched').notNullable();
    t.integer('queued').notNullable();
    t.bigInteger('created_at').notNullable();
  });
  await knex.schema.createTable('replay_run_events', (t) => {
    t.integer('run_id').notNullable().references('replay_runs.id').onDelete('CASCADE');
    // No foreign key to events: a retention sweep may delete old events first.
    t.bigInteger('event_id').notNullable();
    t.primary(['run_id', 'event_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('replay_run_events');
  await knex.schema.dropTableIfExists('replay_runs');
}
