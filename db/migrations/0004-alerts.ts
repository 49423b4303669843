import type { Knex } from 'knex';

/**
 * Alerting: the state of every alert condition, so a restart neither re-alerts nor
 * forgets a firing condition, and the SLA breaches already detected (each counted once).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('alert_state', (t) => {
    /** `backlog:total`, `backlog:<member_id>`, `failed:<member_id>`, `sla:<member_id>` … */
    t.string('key', 160).primary();
    /** backlog | failed | reauth | drift | sla */
    t.string('kind', 16).notNullable();
    t.string('member_id', 64).nullable();
    /** ok | firing */
    t.string('state', 8).notNullable().defaultTo('ok');
    /** First check that saw the condition bad while still ok (grace period before firing). */
    t.bigInteger('pending_since').nullable();
    t.bigInteger('fired_at').nullable();
    t.bigInteger('last_sent_at').nullable();
    /** Kind-specific watermark (the failed-events digest: last processed_at reported). */
    t.bigInteger('cursor').nullable();
    /** The figures last sent, as JSON. */
    t.text('details').nullable();
    /** Optimistic lock: two instances checking at once send one alert. */
    t.integer('version').notNullable().defaultTo(0);
    t.bigInteger('updated_at').notNullable();
  });
  await knex.schema.createTable('sla_breaches', (t) => {
    // No foreign key: a future retention sweep may delete old events before their breaches.
    t.bigInteger('event_id').notNullable();
    t.string('rule_name', 255).notNullable();
    t.integer('portal_id').nullable();
    t.string('member_id', 64).nullable();
    t.integer('sla_seconds').notNullable();
    t.bigInteger('received_at').notNullable();
    /** When the monitor saw it: before the event finished (pending) or after (late). */
    t.bigInteger('detected_at').notNullable();
    /** pending | late */
    t.string('seen', 8).notNullable();
    t.primary(['event_id', 'rule_name']);
    t.index(['member_id', 'detected_at'], 'sla_breaches_member');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('sla_breaches');
  await knex.schema.dropTableIfExists('alert_state');
}
