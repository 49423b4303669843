import type { Knex } from 'knex';

/**
 * The dashboard lists a portal's firing alerts at every view, and the monitor the firing
 * destination alerts at every check. Both read the whole `alert_state` table (several rows
 * per portal: backlog, failed, sla, reauth, drift, destinations) and filtered it in
 * JavaScript: with thousands of portals, a synchronous scan on the main thread, between two
 * deliveries. These indexes let each read only its own rows (db/stores/alerts.ts
 * firingAlertStates).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('alert_state', (t) => {
    t.index(['member_id', 'state'], 'alert_state_member');
    t.index(['kind', 'state'], 'alert_state_kind');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('alert_state', (t) => {
    t.dropIndex(['member_id', 'state'], 'alert_state_member');
    t.dropIndex(['kind', 'state'], 'alert_state_kind');
  });
}
