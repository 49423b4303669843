import type { Knex } from 'knex';

/**
 * Fair processing. The worker claims round-robin across portals: it finds the
 * portals with due jobs by skipping along `jobs_portal_due` (one seek per portal, not a scan
 * of the backlog) and takes each portal's due jobs in (run_at, id) order from the same index;
 * the alert lane takes its jobs from `jobs_type_due`.
 *
 * `destinations`: one row per place a step talks to (an http host, the Telegram API, an SMTP
 * server, an SMS gateway, a portal's REST endpoint), shared by every instance: its circuit
 * breaker. Jobs that wait for an open destination carry its key in `jobs.waiting_for`, so
 * "how many wait for it" is an index lookup.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jobs', (t) => {
    t.string('waiting_for', 160).nullable();
    t.index(['status', 'portal_id', 'run_at', 'id'], 'jobs_portal_due');
    t.index(['waiting_for', 'status'], 'jobs_waiting_for');
    // The alert lane's claim: without it, it walked every due event job to find an alert.
    t.index(['type', 'status', 'run_at', 'id'], 'jobs_type_due');
  });
  await knex.schema.createTable('destinations', (t) => {
    /** `http:host:port`, `telegram:host`, `smtp:host:port`, `sms:host`, `rest:domain`. */
    t.string('key', 160).primary();
    /** closed | open (cool-down running, then one probe is let through) */
    t.string('state', 16).notNullable();
    /** Failures in a row (timeouts, 5xx, connection errors); a success resets it. */
    t.integer('failures').notNullable().defaultTo(0);
    /** Length of the current cool-down; doubles each time a probe fails. */
    t.bigInteger('cooldown_ms').notNullable().defaultTo(0);
    t.bigInteger('opened_at').nullable();
    /** When the next probe may go (open), or until when a probe is out (probe lease). */
    t.bigInteger('retry_at').nullable();
    t.text('last_error').nullable();
    t.bigInteger('updated_at').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('destinations');
  await knex.schema.alterTable('jobs', (t) => {
    t.dropIndex([], 'jobs_type_due');
    t.dropIndex([], 'jobs_waiting_for');
    t.dropIndex([], 'jobs_portal_due');
    t.dropColumn('waiting_for');
  });
}
