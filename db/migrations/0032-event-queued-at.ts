import type { Knex } from 'knex';

/**
 * When an event was last replayed (a replay, or "retry now" in the UI: both go through
 * replayEvents; the worker's own retries do not set it); null for one never replayed. The
 * figures' processing time counts from it: a deal replayed a week after it came in took
 * seconds to process, not a week. No index: it is read with the event, never searched.
 *
 * And when it was first processed, kept through its replays (`sla_done_at`): an SLA is a
 * promise about the delivery, kept or missed by its first completion. A replay of a deal
 * done in time an hour ago is no breach, nor a failed replay of one; a failed event that a
 * replay gets done counts from its receipt as before (null until such a replay).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => {
    t.bigInteger('queued_at').nullable();
    t.bigInteger('sla_done_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => {
    t.dropColumn('queued_at');
    t.dropColumn('sla_done_at');
  });
}
