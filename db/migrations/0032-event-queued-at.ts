import type { Knex } from 'knex';

/**
 * When an event last went back into the queue (a replay, or a retry from its page); null for
 * an event processed from its receipt. The figures' processing time counts from it: a deal
 * replayed a week after it came in took seconds to process, not a week (the SLA still counts
 * from the receipt). No index: it is read with the event, never searched.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => {
    t.bigInteger('queued_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('events', (t) => {
    t.dropColumn('queued_at');
  });
}
