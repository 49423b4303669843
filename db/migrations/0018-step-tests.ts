import type { Knex } from 'knex';

/**
 * "Send this step once" in the rule builder (server/ui/pages/rule-builder-try.ts): a step
 * sent by hand is a test, never a run of an event's rule, so it is kept apart from
 * action_runs (which the log, the rollups, success rates and the deal card count). The newest
 * few per portal are kept (db/stores/step-tests.ts).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('step_tests', (t) => {
    t.increments('id').primary();
    t.integer('portal_id').notNullable();
    t.string('rule_name', 255).notNullable();
    t.integer('step_index').notNullable();
    t.string('step_name', 64).nullable();
    t.string('action_type', 16).notNullable();
    /** Who sent it (the Bitrix24 user id). */
    t.integer('user_id').notNullable();
    /** `succeeded` or `failed`. */
    t.string('status', 16).notNullable();
    t.text('request_summary').nullable();
    t.text('response_summary').nullable();
    t.text('error').nullable();
    t.bigInteger('created_at').notNullable();
    t.index(['portal_id', 'rule_name', 'id'], 'step_tests_portal_rule');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('step_tests');
}
