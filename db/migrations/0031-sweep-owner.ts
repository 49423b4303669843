import type { Knex } from 'knex';

/**
 * Which process runs a sweep (server/README.md#loss-recovery): its host name and pid. A
 * `recover sweep` killed mid-way left its gap `running`, and every later sweep of the same
 * scope was refused as "already running" for an hour; now a sweep that finds such a row from
 * its own host, whose process is gone, records it interrupted and goes ahead.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('recovery_gaps', (t) => {
    t.string('sweep_host', 255).nullable();
    t.integer('sweep_pid').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('recovery_gaps', (t) => {
    t.dropColumn('sweep_host');
    t.dropColumn('sweep_pid');
  });
}
