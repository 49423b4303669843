import type { Knex } from 'knex';

/**
 * What each portal's steps sent through the operator's paid channels (SMS gateway, SMTP
 * server, Telegram bot) per UTC day: a row per portal, channel and day, shared by every
 * instance, so `PORTAL_MESSAGES_PER_DAY` holds across a scale-out (server/processing/
 * channel-quota.ts). Any stranger may install the app and write rules: without it, one
 * portal's rules could spend the operator's SMS account on numbers of its choosing.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('channel_usage', (t) => {
    t.integer('portal_id').notNullable();
    /** sms | email | telegram */
    t.string('channel', 16).notNullable();
    /** The UTC day's start, ms. */
    t.bigInteger('day_start').notNullable();
    t.integer('sent').notNullable().defaultTo(0);
    t.primary(['portal_id', 'channel', 'day_start']);
    // Retention removes past days by age.
    t.index(['day_start'], 'channel_usage_day');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('channel_usage');
}
