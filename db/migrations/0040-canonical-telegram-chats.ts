import { randomInt } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * Telegram chat numbers in the one spelling the Bot API reads them as (`-0100999` is chat
 * -100999; server/lib/telegram-chat.ts `canonicalChat`). Before, a chat linked or saved as
 * typed kept its leading zeros: the step guard, which compares canonical ids, did not see that
 * portal's hold on the chat, and unlinking it by its number did nothing. A spelling whose
 * canonical row exists already gives way to it (its codes, which last 10 minutes, go).
 */
const NUMBER = /^[+-]?\d{1,20}$/;
const canonical = (id: string): string | undefined => {
  const c = id.trim();
  if (!NUMBER.test(c)) return undefined;
  const n = BigInt(c).toString();
  return n === id ? undefined : n;
};

export async function up(knex: Knex): Promise<void> {
  const chats = (await knex('telegram_chats').select('chat_id')) as Array<{ chat_id: string }>;
  for (const { chat_id } of chats) {
    const to = canonical(chat_id);
    if (to === undefined) continue;
    if (await knex('telegram_chats').where({ chat_id: to }).first()) {
      await knex('telegram_chats').where({ chat_id }).delete();
    } else {
      await knex('telegram_chats').where({ chat_id }).update({ chat_id: to });
    }
  }
  const links = (await knex('telegram_chat_links').select('chat_id', 'portal_id')) as Array<{
    chat_id: string;
    portal_id: number;
  }>;
  for (const { chat_id, portal_id } of links) {
    const to = canonical(chat_id);
    if (to === undefined) continue;
    const row = knex('telegram_chat_links').where({ chat_id, portal_id });
    if (await knex('telegram_chat_links').where({ chat_id: to, portal_id }).first()) {
      await row.delete();
    } else {
      await row.update({ chat_id: to });
    }
  }
  const codes = (await knex('telegram_link_codes').select('chat_id')) as Array<{
    chat_id: string;
  }>;
  for (const { chat_id } of codes) {
    if (canonical(chat_id) !== undefined) {
      await knex('telegram_link_codes').where({ chat_id }).delete();
    }
  }
  const saved = (await knex('settings')
    .where({ key: 'alerts.telegramChatId' })
    .select('scope', 'value')) as Array<{ scope: string; value: string }>;
  for (const { scope, value } of saved) {
    let chat: unknown;
    try {
      chat = JSON.parse(value);
    } catch {
      continue;
    }
    const to = typeof chat === 'string' ? canonical(chat) : undefined;
    if (to === undefined) continue;
    await knex('settings')
      .where({ scope, key: 'alerts.telegramChatId' })
      .update({ value: JSON.stringify(to), revision: randomInt(1, 2 ** 47) });
  }
}

export async function down(): Promise<void> {
  // The spellings typed before are not kept: the canonical ids name the same chats.
}
