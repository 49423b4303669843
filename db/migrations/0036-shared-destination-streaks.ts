import type { Knex } from 'knex';

/**
 * Whose steps failed, and how often, in the current run of failures of a shared destination
 * (the operator's Telegram, SMTP server or SMS gateway): `'3:5,7:1'`, at most four portals,
 * `'*'` for a send of the operator's own. One portal alone no longer opens a shared
 * destination for every portal (server/queue/destinations.ts): its failures open its own
 * row, `<key>#<portal id>`. A nullable column without a default: no table rewrite, and the
 * code before it never reads it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('destinations', (t) => {
    t.string('streak_portals', 100).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('destinations', (t) => t.dropColumn('streak_portals'));
}
