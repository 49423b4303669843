import type { Knex } from 'knex';

/**
 * Fair processing inside one portal. A job's `topic` is what its rules are chosen by — the
 * event name (`ONCRMDEALUPDATE`, `ONCRMCONTACTADD`, …), empty for proof and alert jobs — and
 * so the best guess, before the job runs, of where its steps go. The worker hands a portal's
 * slots out round-robin across its due topics (db/stores/jobs.ts `claimFairly`), finding
 * them by skipping along `jobs_topic_due` (one seek per topic, as `jobs_portal_due` does for
 * portals), so one topic's hanging destination cannot take every slot from the others.
 * Existing rows get the empty topic.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jobs', (t) => {
    t.string('topic', 64).notNullable().defaultTo('');
    t.index(['status', 'portal_id', 'topic', 'run_at', 'id'], 'jobs_topic_due');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jobs', (t) => {
    t.dropIndex([], 'jobs_topic_due');
    t.dropColumn('topic');
  });
}
