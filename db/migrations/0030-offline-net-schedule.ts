import type { Knex } from 'knex';

/**
 * When each portal's offline queue is next drained by the safety net
 * (server/README.md#loss-recovery). The net used to walk every portal every 5 minutes, one
 * after another; now each portal has its own interval (5 minutes after a drain that found
 * records or failed, doubling after each empty one up to an hour), and a tick reads only the
 * portals that are due, by the index below. Several instances on PostgreSQL share it: a
 * drain takes the portal's lease first, so one instance drains a portal at a time.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    /**
     * When the next net drain is due (deps.clock ms); 0: at the next tick; null: never (the
     * tombstone a CLEAN uninstall leaves clears every column it does not keep).
     */
    t.bigInteger('offline_due_at').nullable().defaultTo(0);
    /** The interval that set it (ms); null until the first net drain. */
    t.integer('offline_interval_ms').nullable();
    /** Until when a drain holds the portal (ms); null when none does. */
    t.bigInteger('offline_lease_until').nullable();
    // Equality on status and auth mode first: uninstalled portals, left due for good, are
    // outside the range a tick reads; then the order a tick pages in.
    t.index(['status', 'auth_mode', 'offline_due_at', 'id'], 'portals_offline_due');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    t.dropIndex([], 'portals_offline_due');
    t.dropColumn('offline_due_at');
    t.dropColumn('offline_interval_ms');
    t.dropColumn('offline_lease_until');
  });
}
