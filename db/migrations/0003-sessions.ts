import type { Knex } from 'knex';

/**
 * Sessions of the pages inside Bitrix24 (express-session store, db/stores/sessions.ts), and
 * the indexes the event log needs to page by id newest-first under a filter without sorting
 * the whole table (1,000,000 events, log page p95 ≤ 200 ms: test/bench/README.md).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('sessions', (t) => {
    t.string('sid', 128).primary();
    /** The session as JSON (portal, user, admin flag, language, CSRF token). */
    t.text('sess').notNullable();
    /** Milliseconds since the epoch after which the session is gone. */
    t.bigInteger('expires_at').notNullable();
    t.index(['expires_at'], 'sessions_expires');
  });
  await knex.schema.alterTable('events', (t) => {
    t.index(['portal_id', 'id'], 'events_portal_id');
    t.index(['portal_id', 'status', 'id'], 'events_portal_status_id');
    t.index(['portal_id', 'event', 'id'], 'events_portal_event_id');
    t.index(['portal_id', 'entity_id', 'id'], 'events_portal_entity_id');
    // Covers the dashboard's processing times (processed in the last 24 h) without rows.
    t.index(['portal_id', 'status', 'processed_at', 'received_at'], 'events_portal_processed');
  });
  await knex.schema.alterTable('action_runs', (t) => {
    t.index(['started_at'], 'action_runs_started');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('action_runs', (t) => t.dropIndex([], 'action_runs_started'));
  await knex.schema.alterTable('events', (t) => {
    t.dropIndex([], 'events_portal_id');
    t.dropIndex([], 'events_portal_status_id');
    t.dropIndex([], 'events_portal_event_id');
    t.dropIndex([], 'events_portal_entity_id');
    t.dropIndex([], 'events_portal_processed');
  });
  await knex.schema.dropTableIfExists('sessions');
}
