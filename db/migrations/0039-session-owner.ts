import type { Knex } from 'knex';

/**
 * Whose each UI session is (portal and user), so the store keeps a bounded number of live
 * sessions per user (db/stores/sessions.ts `maxPerOwner`): every frame entry starts a session
 * of two hours, and one AUTH_ID the portal confirmed is let in again for five minutes without
 * asking, so a user posting it in a loop stored a row per post (3,000 in 33 s, in the
 * database every portal shares). Rows written before have none and are never trimmed; they
 * end within their two hours. A nullable column without a default: no table rewrite, and the
 * code before it never reads it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('sessions', (t) => {
    t.string('owner', 200).nullable();
    t.index(['owner', 'expires_at'], 'sessions_owner');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('sessions', (t) => {
    t.dropIndex([], 'sessions_owner');
    t.dropColumn('owner');
  });
}
