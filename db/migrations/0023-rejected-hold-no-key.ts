import type { Knex } from 'knex';

/**
 * A delivery rejected at verification kept its dedupe key, so an identical genuine delivery
 * that came later was answered as its duplicate and lost (a forged copy posted before the
 * portal's token was known). Rejected deliveries now give their key up; this clears the
 * keys of those rejected before (through `events_status_received`).
 */
export async function up(knex: Knex): Promise<void> {
  await knex('events').where('status', 'rejected').whereNotNull('dedupe_key').update({
    dedupe_key: null,
  });
}

export async function down(): Promise<void> {
  // Nothing to restore: a rejected delivery's key only ever stood in the way.
}
