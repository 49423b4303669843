import type { Knex } from 'knex';

/** Final statuses whose events retention prunes; see db/stores/retention.ts. */
export const PRUNE_INDEX_PREDICATE = "status in ('processed', 'skipped', 'rejected', 'failed')";

/**
 * Retention and erasure (db/README.md): the indexes that let a prune or erase batch find its rows
 * by range instead of scanning.
 *
 * `events_prune` is partial: the intake stores `received` rows, which it does not hold, so a
 * delivery pays nothing for it (each index on `events` costs intake throughput);
 * rows enter it when they reach a final status. Queries repeat its predicate word for word,
 * which is how SQLite decides a partial index applies (https://sqlite.org/partialindex.html,
 * section 2).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => {
    t.index(['portal_id', 'status', 'received_at'], 'events_prune', {
      predicate: knex.whereRaw(PRUNE_INDEX_PREDICATE),
    });
  });
  // Jobs without an event (alerts) are pruned by age; those of events go with their event.
  await knex.schema.alterTable('jobs', (t) => {
    t.index(['status', 'updated_at'], 'jobs_eventless', {
      predicate: knex.whereRaw('event_id is null'),
    });
  });
  await knex.schema.alterTable('replay_run_events', (t) => {
    t.index(['event_id'], 'replay_run_events_event');
  });
  await knex.schema.alterTable('replay_runs', (t) => {
    t.index(['portal_id', 'created_at'], 'replay_runs_portal_created');
  });
  await knex.schema.alterTable('own_writes', (t) => {
    t.index(['written_at'], 'own_writes_written');
  });
  await knex.schema.alterTable('entity_snapshots', (t) => {
    t.index(['portal_id', 'updated_at'], 'entity_snapshots_seen');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('entity_snapshots', (t) => t.dropIndex([], 'entity_snapshots_seen'));
  await knex.schema.alterTable('own_writes', (t) => t.dropIndex([], 'own_writes_written'));
  await knex.schema.alterTable('replay_runs', (t) => t.dropIndex([], 'replay_runs_portal_created'));
  await knex.schema.alterTable('replay_run_events', (t) =>
    t.dropIndex([], 'replay_run_events_event'),
  );
  await knex.schema.alterTable('jobs', (t) => t.dropIndex([], 'jobs_eventless'));
  await knex.schema.alterTable('events', (t) => t.dropIndex([], 'events_prune'));
}
