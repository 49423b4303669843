import type { Knex } from 'knex';

/**
 * An `http` step's destination became the portal's own (`http:<host>#<portal id>`,
 * server/queue/destinations.ts): one portal's failures at a host no longer open it for
 * every portal. Breaker rows under the old shared key would stay open with nothing left to
 * probe them, listed on dashboards and alerted on, so they go; the jobs that waited for one
 * run at their retry time under the new key.
 */
export async function up(knex: Knex): Promise<void> {
  await knex('destinations').where('key', 'like', 'http:%').whereNot('key', 'like', '%#%').del();
}

export async function down(): Promise<void> {
  // Nothing to restore: the shared rows were only a breaker's state.
}
