import type { Knex } from 'knex';

/**
 * Three indexes no longer take the rows the event intake writes, which every delivery paid
 * for in its group commit: each index is about 2.5 of the ~62 pages a 22-delivery commit
 * writes to the WAL (test/bench/README.md#intake). Their queries keep them:
 * - `jobs_waiting_for` only for jobs that wait for an open destination: its one query
 *   (db/stores/destinations.ts `openDestinations`) asks `waiting_for IN (…)`, which implies
 *   `waiting_for IS NOT NULL` on SQLite and PostgreSQL; a new job waits for nothing.
 * - `events_portal_processed` only for finished events: its queries (failed events for the
 *   alert, late events for the SLA) compare `processed_at`, which implies it is not null; a
 *   new event is not finished.
 * - `jobs_type_due` only for alert jobs: its one query is the alert lane's claim
 *   (`type = 'alert'`, db/stores/jobs.ts `claimable`). A bound value lets both planners use
 *   the partial index: SQLite plans the statement again with the value once it is bound
 *   (sqlite3_prepare_v2/v3), PostgreSQL plans knex's unnamed statements with their values.
 * Rebuilding an index reads the table once (seconds per million events).
 */
const INDEXES = [
  {
    name: 'jobs_waiting_for',
    create: (where: string) =>
      `create index jobs_waiting_for on jobs (waiting_for, status)${where}`,
    where: ' where waiting_for is not null',
  },
  {
    name: 'events_portal_processed',
    create: (where: string) =>
      `create index events_portal_processed on events (portal_id, status, processed_at, received_at)${where}`,
    where: ' where processed_at is not null',
  },
  {
    name: 'jobs_type_due',
    create: (where: string) =>
      `create index jobs_type_due on jobs (type, status, run_at, id)${where}`,
    where: " where type = 'alert'",
  },
];

export async function up(knex: Knex): Promise<void> {
  for (const ix of INDEXES) {
    await knex.raw(`drop index ${ix.name}`);
    await knex.raw(ix.create(ix.where));
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const ix of INDEXES) {
    await knex.raw(`drop index ${ix.name}`);
    await knex.raw(ix.create(''));
  }
}
