import type { Knex } from 'knex';

/** A Telegram chat the app has posted to or resolved (migration 0025). */
export interface TelegramChatRow {
  chat_id: string;
  username: string | null;
  portal_id: number | null;
  updated_at: number;
}

const normalise = (r: Record<string, unknown>): TelegramChatRow => ({
  chat_id: String(r.chat_id),
  username: (r.username as string | null) ?? null,
  portal_id: r.portal_id === null || r.portal_id === undefined ? null : Number(r.portal_id),
  updated_at: Number(r.updated_at),
});

export async function getTelegramChat(
  db: Knex,
  chatId: string,
): Promise<TelegramChatRow | undefined> {
  const r = (await db('telegram_chats').where({ chat_id: chatId }).first()) as
    Record<string, unknown> | undefined;
  return r ? normalise(r) : undefined;
}

/** The chat an `@name` (lower case, without `@`) resolved to last. */
export async function telegramChatByUsername(
  db: Knex,
  username: string,
): Promise<TelegramChatRow | undefined> {
  const r = (await db('telegram_chats')
    .where({ username })
    .orderBy('updated_at', 'desc')
    .first()) as Record<string, unknown> | undefined;
  return r ? normalise(r) : undefined;
}

/** Remembers that `@username` is the chat `chatId` (a name can move: older rows lose it). */
export async function rememberTelegramUsername(
  db: Knex,
  chatId: string,
  username: string,
  now: number,
): Promise<void> {
  await db.transaction(async (trx) => {
    await trx('telegram_chats')
      .where({ username })
      .whereNot({ chat_id: chatId })
      .update({ username: null });
    await trx('telegram_chats')
      .insert({ chat_id: chatId, username, portal_id: null, updated_at: now })
      .onConflict('chat_id')
      .merge({ username, updated_at: now });
  });
}

/** Holds `chatId` for `portalId` unless another portal holds it already. */
export async function claimTelegramChat(
  db: Knex,
  chatId: string,
  portalId: number,
  now: number,
): Promise<void> {
  await db.raw(
    `insert into telegram_chats (chat_id, username, portal_id, updated_at) values (?, null, ?, ?)
     on conflict (chat_id) do update set portal_id = excluded.portal_id, updated_at = excluded.updated_at
     where telegram_chats.portal_id is null`,
    [chatId, portalId, now],
  );
}
