import type { Knex } from 'knex';

/**
 * Chats a portal proved are its own (db/stores/telegram-chats.ts). Holding a chat by posting
 * first (0025) let a portal that learnt another's chat id hold it before its owner posted, and
 * kept two portals of one company from sharing a chat. A portal that asks for a code on its
 * Alerts page gets it from the bot in that chat, and typing it back links the chat: once a chat
 * has links, only the linked portals post there, whoever posted first.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('telegram_chat_links', (t) => {
    t.string('chat_id', 64).notNullable();
    t.integer('portal_id').notNullable().index('telegram_chat_links_portal');
    t.bigInteger('linked_at').notNullable();
    t.primary(['chat_id', 'portal_id']);
  });
  await knex.schema.createTable('telegram_link_codes', (t) => {
    t.integer('portal_id').notNullable();
    t.string('chat_id', 64).notNullable();
    /** sha256 of the code: a database copy does not give away a code still valid. */
    t.string('code_digest', 64).notNullable();
    t.integer('tries').notNullable().defaultTo(0);
    t.bigInteger('sent_at').notNullable();
    t.bigInteger('expires_at').notNullable();
    t.primary(['portal_id', 'chat_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('telegram_link_codes');
  await knex.schema.dropTable('telegram_chat_links');
}
