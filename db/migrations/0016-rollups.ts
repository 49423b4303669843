import type { Knex } from 'knex';

/**
 * Rollups (db/README.md#figures-without-scans): the figures of the dashboard, the alert monitor,
 * SLA checks, `status` and `/metrics`, kept up to date in the transaction of every change to an
 * event or an action run (db/stores/rollups.ts), so that no reader scans the events table.
 *
 * One narrow table for every kind of figure: `kind` says what is counted, `grain` the size
 * of `bucket` (m minute, h hour, d day, a all time with bucket 0), `k1`/`k2` the kind's
 * dimensions, `n` a count, `s` a sum and `mx` a maximum. No foreign key to events: pruned
 * events leave their figures here until the rollups' own horizon.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rollups', (t) => {
    t.string('kind', 8).notNullable();
    t.string('grain', 1).notNullable();
    /** 0 for events of no known portal. */
    t.integer('portal_id').notNullable();
    t.bigInteger('bucket').notNullable();
    t.string('k1', 255).notNullable().defaultTo('');
    t.string('k2', 64).notNullable().defaultTo('');
    t.bigInteger('n').notNullable().defaultTo(0);
    t.bigInteger('s').notNullable().defaultTo(0);
    t.bigInteger('mx').notNullable().defaultTo(0);
    t.primary(['kind', 'grain', 'portal_id', 'bucket', 'k1', 'k2']);
    // All portals' rows of a period (status and /metrics totals), and the horizon prune.
    t.index(['kind', 'grain', 'bucket'], 'rollups_period');
  });
  await knex.schema.alterTable('rule_matches', (t) => {
    /** The rule's slaSeconds × 1000 when it matched (null: no SLA), for the SLA rollups. */
    t.bigInteger('sla_ms').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rule_matches', (t) => t.dropColumn('sla_ms'));
  await knex.schema.dropTableIfExists('rollups');
}
