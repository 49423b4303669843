import type { Knex } from 'knex';

/**
 * The records an event's record belongs to, learned when the worker reads it (Bitrix24
 * sends only the ID): a call made in deal 5 has the owner `deal` 5, so the deal tab lists it
 * beside the deal's own events (server/processing/owners.ts). A table of its own rather
 * than columns on `events`: the intake writes no row here and pays for no index, and the
 * migration creates an empty table on a log of any size. Pruned and erased with its event
 * (db/stores/retention.ts EVENT_CHILDREN); an erasure of the owner removes its links.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('event_owners', (t) => {
    t.bigInteger('event_id').notNullable().references('id').inTable('events');
    t.integer('portal_id').notNullable();
    t.string('owner_type', 32).notNullable();
    t.string('owner_id', 32).notNullable();
    t.primary(['event_id', 'owner_type', 'owner_id']);
    // The deal tab: a deal's linked events, newest first.
    t.index(['portal_id', 'owner_type', 'owner_id', 'event_id'], 'event_owners_owner');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('event_owners');
}
