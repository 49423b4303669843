import type { Knex } from 'knex';

/**
 * Token refresh on `portals`:
 * - a refresh lease, so that one process at a time refreshes a portal's token, across
 *   processes and on SQLite too (refresh tokens rotate: the loser of a race gets
 *   invalid_grant);
 * - a pause with its reason, for a portal whose OAuth server answers `invalid_client` or
 *   `PAYMENT_REQUIRED` at refresh: its jobs wait instead of failing, and the status stays
 *   `installed` (as `npx b24hooks portals` shows it).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    /** Who refreshes now (a random id per process and refresh), or null. */
    t.string('refresh_lease_holder', 64).nullable();
    /** Milliseconds since the epoch (wall clock) when the lease lapses if not released. */
    t.bigInteger('refresh_lease_until').nullable();
    /** `invalid_client` | `payment_required`, or null when the portal is not paused. */
    t.string('pause_reason', 32).nullable();
    /** When the pause began or was last confirmed (deps.clock milliseconds). */
    t.bigInteger('paused_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    t.dropColumn('refresh_lease_holder');
    t.dropColumn('refresh_lease_until');
    t.dropColumn('pause_reason');
    t.dropColumn('paused_at');
  });
}
