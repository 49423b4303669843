import type { Knex } from 'knex';

/**
 * When each rule of an event was done (its last step succeeded), so a rule's SLA is judged
 * by its own steps: an event that matched "Paid deal" (SLA 60 s) and a second rule whose
 * target was down for ten minutes counted "Paid deal" late, and alerted, although the
 * invoice was created in two seconds. The first completion is kept through replays, as the
 * event's `sla_done_at` is (migration 0032). Rule matches written before have none and are
 * judged by their event as before (db/stores/rollups.ts). A nullable column without a
 * default: no table rewrite on either database, and the code before it never reads it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rule_matches', (t) => {
    t.bigInteger('done_at').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rule_matches', (t) => t.dropColumn('done_at'));
}
