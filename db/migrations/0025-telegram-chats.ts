import type { Knex } from 'knex';

/**
 * Which portal a Telegram chat belongs to (db/stores/telegram-chats.ts). Every portal's
 * `telegram` steps and alerts post through the operator's one bot, so without it a portal
 * could post into any chat the bot is in: another portal's alert chat, named by its id or its
 * public `@name`. A chat is held by the first portal that posted to it; `username` remembers
 * what an `@name` resolved to (Bot API getChat), so a name and an id are one chat.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('telegram_chats', (t) => {
    t.string('chat_id', 64).primary();
    t.string('username', 64).nullable().index('telegram_chats_username');
    t.integer('portal_id').nullable().index('telegram_chats_portal');
    t.bigInteger('updated_at').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('telegram_chats');
}
