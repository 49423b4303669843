import type { Knex } from 'knex';

/**
 * Drops `events_entity` (portal_id, entity_type, entity_id, received_at) of 0001: every
 * query that narrows events by entity names the portal and the entity id, and 0003's
 * `events_portal_entity_id` (portal_id, entity_id, id) serves those better (already in the
 * id order the log and the deal tab page by). Each index on `events` is paid by every
 * delivery the intake stores (intake throughput: test/bench/README.md).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => t.dropIndex([], 'events_entity'));
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => {
    t.index(['portal_id', 'entity_type', 'entity_id', 'received_at'], 'events_entity');
  });
}
