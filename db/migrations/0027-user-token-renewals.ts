import type { Knex } from 'knex';

/**
 * The renewals of users' token pairs that UI sessions make to re-check admin rights
 * (server/ui/user-renewal.ts), shared by every instance: Bitrix24 spends a refresh token at
 * its first use, so of two instances renewing the same one, the second met invalid_grant and
 * demoted an admin. One row per spent refresh token: the instance renewing it holds the lease,
 * then leaves the new pair (encrypted with TOKEN_ENCRYPTION_KEY) for the others.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('user_token_renewals', (t) => {
    /** Keyed digest (HMAC-SHA256, hex) of the refresh token spent by this renewal. */
    t.string('spent', 64).primary();
    /** The portal (a CLEAN uninstall erases its rows by this column). */
    t.string('member_id', 64).notNullable();
    /** The instance renewing now, and until when its lease holds (wall clock, ms). */
    t.string('holder', 64).nullable();
    t.bigInteger('lease_until').nullable();
    /** The new pair, once renewed: JSON, encrypted (`v1.`). */
    t.text('pair_enc').nullable();
    /** When the renewal began: rows are kept as long as a session holding the spent pair lives. */
    t.bigInteger('created_at').notNullable().index('user_token_renewals_created');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('user_token_renewals');
}
