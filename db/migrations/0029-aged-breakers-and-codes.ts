import type { Knex } from 'knex';

/**
 * Retention of two tables that only grew (db/README.md#retention): a destination's breaker
 * row stayed for good once a step had failed there (with its last error, which may quote an
 * event's data), and a Telegram link code nobody typed back stayed after it expired. The
 * retention pass finds closed breakers and expired codes older than its cut-off by these
 * indexes instead of reading the tables.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('destinations', (t) => {
    t.index(['state', 'updated_at'], 'destinations_aged');
  });
  await knex.schema.alterTable('telegram_link_codes', (t) => {
    t.index(['expires_at'], 'telegram_link_codes_expires');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('telegram_link_codes', (t) =>
    t.dropIndex([], 'telegram_link_codes_expires'),
  );
  await knex.schema.alterTable('destinations', (t) => t.dropIndex([], 'destinations_aged'));
}
