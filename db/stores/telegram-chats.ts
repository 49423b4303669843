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

/** Gives `chatId` up if `portalId` holds it (a claim whose message did not go out). */
export async function releaseTelegramChat(
  db: Knex,
  chatId: string,
  portalId: number,
  now: number,
): Promise<void> {
  await db('telegram_chats')
    .where({ chat_id: chatId, portal_id: portalId })
    .update({ portal_id: null, updated_at: now });
}

/** The portals that proved `chatId` is theirs (migration 0026). */
export async function telegramChatLinks(db: Knex, chatId: string): Promise<number[]> {
  return (
    (await db('telegram_chat_links').where({ chat_id: chatId }).pluck('portal_id')) as unknown[]
  )
    .map(Number)
    .sort((a, b) => a - b);
}

/** The chats a portal linked, oldest first. */
export async function linkedChatsOf(
  db: Knex,
  portalId: number,
): Promise<Array<{ chat_id: string; username: string | null; linked_at: number }>> {
  const rows = (await db('telegram_chat_links as l')
    .leftJoin('telegram_chats as c', 'c.chat_id', 'l.chat_id')
    .where('l.portal_id', portalId)
    .orderBy('l.linked_at')
    .orderBy('l.chat_id')
    .select('l.chat_id', 'c.username', 'l.linked_at')) as Array<Record<string, unknown>>;
  return rows.map((r) => ({
    chat_id: String(r.chat_id),
    username: (r.username as string | null) ?? null,
    linked_at: Number(r.linked_at),
  }));
}

export interface LinkCodeRow {
  code_digest: string;
  tries: number;
  sent_at: number;
  expires_at: number;
}

export async function getLinkCode(
  db: Knex,
  portalId: number,
  chatId: string,
): Promise<LinkCodeRow | undefined> {
  const r = (await db('telegram_link_codes')
    .where({ portal_id: portalId, chat_id: chatId })
    .first()) as Record<string, unknown> | undefined;
  return r
    ? {
        code_digest: String(r.code_digest),
        tries: Number(r.tries),
        sent_at: Number(r.sent_at),
        expires_at: Number(r.expires_at),
      }
    : undefined;
}

/** The code sent last to `chatId` for `portalId` (one per portal and chat; a new one replaces it). */
export async function putLinkCode(
  db: Knex,
  portalId: number,
  chatId: string,
  row: { code_digest: string; sent_at: number; expires_at: number },
): Promise<void> {
  await db('telegram_link_codes')
    .insert({ portal_id: portalId, chat_id: chatId, tries: 0, ...row })
    .onConflict(['portal_id', 'chat_id'])
    .merge({ ...row, tries: 0 });
}

/**
 * Takes one of the code's tries before the code is compared, in one statement (a read and a
 * later increment apart would let guesses sent at once all see the same count): false, and
 * nothing counted, when `limit` tries were taken already or the code has expired.
 */
export async function takeLinkCodeTry(
  db: Knex,
  portalId: number,
  chatId: string,
  limit: number,
  now: number,
): Promise<boolean> {
  const n = await db('telegram_link_codes')
    .where({ portal_id: portalId, chat_id: chatId })
    .where('tries', '<', limit)
    .where('expires_at', '>', now)
    .increment('tries', 1);
  return Number(n) > 0;
}

/**
 * Stores `row` as the code for `portalId` and `chatId` unless one was sent there after
 * `sentAfter`: true when this row is the one stored. One statement, so requests sent at once
 * reserve one code between them (the bot then posts that one only); the digest read back tells
 * which request won, each code being random.
 */
export async function reserveLinkCode(
  db: Knex,
  portalId: number,
  chatId: string,
  row: { code_digest: string; sent_at: number; expires_at: number },
  sentAfter: number,
): Promise<boolean> {
  await db.raw(
    `insert into telegram_link_codes (portal_id, chat_id, code_digest, tries, sent_at, expires_at)
     values (?, ?, ?, 0, ?, ?)
     on conflict (portal_id, chat_id) do update set code_digest = excluded.code_digest,
       tries = 0, sent_at = excluded.sent_at, expires_at = excluded.expires_at
     where telegram_link_codes.sent_at <= ?`,
    [portalId, chatId, row.code_digest, row.sent_at, row.expires_at, sentAfter],
  );
  return (await getLinkCode(db, portalId, chatId))?.code_digest === row.code_digest;
}

/** Drops the code of `portalId` and `chatId` (only if it is still `codeDigest`, when given). */
export async function dropLinkCode(
  db: Knex,
  portalId: number,
  chatId: string,
  codeDigest?: string,
): Promise<void> {
  const q = db('telegram_link_codes').where({ portal_id: portalId, chat_id: chatId });
  if (codeDigest !== undefined) q.where({ code_digest: codeDigest });
  await q.delete();
}

/**
 * Links `chatId` to `portalId` (the code was right): from now on only linked portals post
 * there, so whoever held it by posting first (0025) no longer does; the chat is recorded as
 * held by this portal for the pages that only read the holder.
 */
export async function linkTelegramChat(
  db: Knex,
  chatId: string,
  portalId: number,
  now: number,
): Promise<void> {
  await db.transaction(async (trx) => {
    await trx('telegram_link_codes').where({ portal_id: portalId, chat_id: chatId }).delete();
    await trx('telegram_chat_links')
      .insert({ chat_id: chatId, portal_id: portalId, linked_at: now })
      .onConflict(['chat_id', 'portal_id'])
      .ignore();
    const held = (await trx('telegram_chats').where({ chat_id: chatId }).first()) as
      { portal_id: number | null } | undefined;
    const holderLinked =
      held?.portal_id !== null &&
      held?.portal_id !== undefined &&
      (await trx('telegram_chat_links')
        .where({ chat_id: chatId, portal_id: held.portal_id })
        .first()) !== undefined;
    if (!held) {
      await trx('telegram_chats').insert({
        chat_id: chatId,
        username: null,
        portal_id: portalId,
        updated_at: now,
      });
    } else if (!holderLinked) {
      await trx('telegram_chats')
        .where({ chat_id: chatId })
        .update({ portal_id: portalId, updated_at: now });
    }
  });
}

/**
 * Unlinks `chatId` from `portalId` and gives the chat up: linking recorded the portal as its
 * holder (and it may have held it by posting first), which would otherwise keep every other
 * portal out once no link is left; the next portal to post there holds it.
 */
export async function unlinkTelegramChat(
  db: Knex,
  chatId: string,
  portalId: number,
): Promise<number> {
  return db.transaction(async (trx) => {
    const n = await trx('telegram_chat_links')
      .where({ chat_id: chatId, portal_id: portalId })
      .delete();
    if (n > 0) {
      await trx('telegram_chats')
        .where({ chat_id: chatId, portal_id: portalId })
        .update({ portal_id: null });
    }
    return n;
  });
}
