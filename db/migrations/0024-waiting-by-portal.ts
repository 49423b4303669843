import type { Knex } from 'knex';

/**
 * The alert of a REST endpoint goes to the portal whose jobs wait for it, so the count of
 * waiting jobs is taken per destination and portal (db/stores/destinations.ts
 * `openDestinations`). The partial index `jobs_waiting_for` (migration 0020) gains
 * `portal_id` so that count still reads the index alone: without it SQLite chose
 * `jobs_portal_due` and read every pending job. Still only jobs that wait for an open
 * destination: the intake writes none of its rows.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('drop index jobs_waiting_for');
  await knex.raw(
    'create index jobs_waiting_for on jobs (waiting_for, status, portal_id) where waiting_for is not null',
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index jobs_waiting_for');
  await knex.raw(
    'create index jobs_waiting_for on jobs (waiting_for, status) where waiting_for is not null',
  );
}
