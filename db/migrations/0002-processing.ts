import type { Knex } from 'knex';

/**
 * What event processing keeps: per-entity snapshots of watched fields (Bitrix24 sends only
 * the ID, so transitions need our own before-values), which rules an event matched when it
 * was first evaluated (retries and replays resume those rules instead of re-deciding), and
 * our own writes to Bitrix24 (the loop guard).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('entity_snapshots', (t) => {
    t.integer('portal_id').notNullable().references('id').inTable('portals');
    t.string('entity_type', 32).notNullable();
    t.string('entity_id', 32).notNullable();
    t.text('fields').notNullable();
    t.bigInteger('event_id').nullable();
    t.bigInteger('updated_at').notNullable();
    t.primary(['portal_id', 'entity_type', 'entity_id']);
  });
  await knex.schema.createTable('rule_matches', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('event_id').notNullable().references('id').inTable('events');
    t.string('rule_name', 255).notNullable();
    t.integer('rule_index').notNullable();
    t.text('reason').nullable();
    /** The snapshot the transition was judged against (for the stale-trigger re-check). */
    t.text('previous').nullable();
    /** matched | skipped (stale trigger / loop guard) | done */
    t.string('status', 16).notNullable().defaultTo('matched');
    t.text('note').nullable();
    t.bigInteger('created_at').notNullable();
    t.unique(['event_id', 'rule_name']);
  });
  await knex.schema.createTable('own_writes', (t) => {
    t.bigIncrements('id').primary();
    t.integer('portal_id').notNullable();
    t.string('entity_type', 32).notNullable();
    t.string('entity_id', 32).notNullable();
    t.string('rule_name', 255).notNullable();
    t.integer('depth').notNullable();
    t.bigInteger('written_at').notNullable();
    t.bigInteger('consumed_by_event_id').nullable();
    t.index(['portal_id', 'entity_type', 'entity_id', 'written_at'], 'own_writes_entity');
  });
  await knex.schema.alterTable('events', (t) => {
    /** When the rules were first evaluated for this event (null: not yet). */
    t.bigInteger('evaluated_at').nullable();
    /** Loop guard: how many of our own writes led to this event. */
    t.integer('chain_depth').notNullable().defaultTo(0);
  });
  await knex.schema.alterTable('action_runs', (t) => {
    /** 0 for the first run; a replay with --rerun-succeeded starts a new generation. */
    t.integer('generation').notNullable().defaultTo(0);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('action_runs', (t) => t.dropColumn('generation'));
  await knex.schema.alterTable('events', (t) => {
    t.dropColumn('evaluated_at');
    t.dropColumn('chain_depth');
  });
  for (const table of ['own_writes', 'rule_matches', 'entity_snapshots']) {
    await knex.schema.dropTableIfExists(table);
  }
}
