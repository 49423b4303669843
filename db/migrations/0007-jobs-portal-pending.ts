import type { Knex } from 'knex';

/**
 * The processor's read-ahead asks for a portal's pending process_event jobs in id order
 * (db/stores/jobs.ts dueEntityRefs). Without this index that walked `jobs_due` and sorted:
 * about 5 ms with a 28k-job backlog, on the main thread, once per cache miss.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jobs', (t) => {
    t.index(['portal_id', 'status', 'type', 'id'], 'jobs_portal_pending');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('jobs', (t) => t.dropIndex([], 'jobs_portal_pending'));
}
