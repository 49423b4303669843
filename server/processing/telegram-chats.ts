import type { Knex } from 'knex';
import {
  claimTelegramChat,
  getTelegramChat,
  releaseTelegramChat,
  rememberTelegramUsername,
  telegramChatByUsername,
  telegramChatLinks,
} from '../../db/stores/telegram-chats.js';
import { failOnStatus } from '../actions/http-call.js';
import { callBotApi } from '../actions/telegram-bot.js';
import type { TelegramChatGuard } from '../actions/types.js';
import type { Config } from '../config.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { PermanentError, RetryableError } from '../lib/retry-errors.js';
import { canonicalChat, TELEGRAM_CHAT } from '../lib/telegram-chat.js';

const NUMERIC = /^[+-]?\d{1,20}$/;

export interface TelegramChatDeps {
  db: Knex;
  config: Pick<Config, 'telegram'>;
  clock: Clock;
  logger: Logger;
}

/**
 * The chats a portal's `telegram` steps and alerts may post to. Every portal posts through
 * the operator's one bot, which is in the operator's alert chat and in the chats every portal
 * added it to, so a step naming another portal's chat (by its id or its public `@name`) would
 * post there. A chat is held by the first portal that posted to it (telegram_chats, migration
 * 0025); the operator's TELEGRAM_CHAT_ID is no portal's. An `@name` is resolved to its id with
 * the Bot API's getChat first (remembered), so a name and an id are one chat.
 */
export function telegramChatGuard(
  deps: TelegramChatDeps,
  portalId: number,
  fetchFn: typeof fetch = globalThis.fetch,
): TelegramChatGuard {
  const now = () => deps.clock.now().getTime();
  const resolve = async (chat: string): Promise<string> => {
    const name = chat.trim();
    // One chat, one spelling: `-0100555` and `+100555` name the chat `-100555` to the Bot API
    // as numbers, so the guard must hold them as the same chat, and sends to this form.
    if (NUMERIC.test(name)) return BigInt(name).toString();
    // Anything else is refused here, not left to the Bot API, which may read a chat_id by its
    // leading digits alone (tdlib/telegram-bot-api's Client::check_chat parses it with
    // td::to_integer): `-100777.5`, or a deal title `-100777 x` that a `{{template}}` put
    // there, would be chat -100777 to it while the guard held it as some other chat.
    if (!TELEGRAM_CHAT.test(name) || !name.startsWith('@')) {
      throw new PermanentError(
        `telegram step: chatId ${JSON.stringify(name.slice(0, 80))} is not a chat: expected a number like -1001234567890 or @channel_name`,
      );
    }
    const username = name.slice(1).toLowerCase();
    const known = await telegramChatByUsername(deps.db, username);
    if (known) return known.chat_id;
    const id = await getChatId(deps.config, name, fetchFn, deps.clock.now());
    await rememberTelegramUsername(deps.db, id, username, now());
    return id;
  };
  /** Chats this guard's `admit` took for the portal, until a message to them went out. */
  const takenNow = new Set<string>();
  return {
    async admit(chat) {
      const id = await resolve(chat);
      const operator = deps.config.telegram.chatId;
      if (operator) {
        // The operator's chat must be known by its id before any step is let in: an `@name`
        // whose getChat failed just now (a 429) was compared as the name, and a step naming
        // the chat's number went into the operator's alert chat (a review).
        // A name Telegram refuses for good (no such chat, the bot not in it) is no chat the
        // bot can post to under another id either: it is compared as written, and said in the
        // log. The tenant's error never names the operator's chat.
        const operatorId = await resolve(operator).catch((e: unknown) => {
          if (operator === chat.trim() || !(e instanceof RetryableError)) {
            deps.logger.warn(
              { err: (e as Error).message },
              'TELEGRAM_CHAT_ID could not be looked up; steps are compared with it as written',
            );
            return operator;
          }
          throw new RetryableError(
            "telegram step: the server's alert chat (TELEGRAM_CHAT_ID) could not be looked up just now; tried again later",
            { retryAfterMs: e.retryAfterMs },
          );
        });
        if (operatorId === id || operator === chat.trim()) {
          throw new PermanentError(
            "telegram step: the chat is the server's alert chat (TELEGRAM_CHAT_ID), which rules may not post to",
          );
        }
      }
      // Claimed before the message goes, not after: two portals posting at once to a chat
      // nobody held would otherwise both get through. A claim never takes a linked chat.
      if ((await telegramChatLinks(deps.db, id)).length === 0) {
        const before = await getTelegramChat(deps.db, id);
        await claimTelegramChat(deps.db, id, portalId, now());
        if (before?.portal_id === null || before === undefined) takenNow.add(id);
      }
      if ((await chatOwner(deps.db, id, portalId)) === 'other') {
        throw new PermanentError(
          `telegram: chat ${chat} is used by another portal of this app; post to a chat of your own (add the bot there), or link this one on the Alerts page if it is yours`,
        );
      }
      return id;
    },
    async claim(chatId) {
      takenNow.delete(chatId);
      try {
        await claimTelegramChat(deps.db, chatId, portalId, now());
      } catch (e) {
        // The message went out; a failed claim must not send it again.
        deps.logger.warn({ err: (e as Error).message, portalId }, 'telegram chat not recorded');
      }
    },
    async release(chatId) {
      if (!takenNow.delete(chatId)) return;
      await releaseTelegramChat(deps.db, chatId, portalId, now());
    },
  };
}

/**
 * Whether `portalId` may post to chat `id`: once portals have linked the chat (proved it is
 * theirs with a code the bot sent there), only they may; until then the first portal that
 * posted there holds it.
 */
async function chatOwner(db: Knex, id: string, portalId: number): Promise<'ours' | 'other'> {
  const links = await telegramChatLinks(db, id);
  if (links.length > 0) return links.includes(portalId) ? 'ours' : 'other';
  const held = await getTelegramChat(db, id);
  return held?.portal_id !== null && held?.portal_id !== undefined && held.portal_id !== portalId
    ? 'other'
    : 'ours';
}

/** The numeric id of an `@name` (Bot API getChat). */
export async function getChatId(
  config: Pick<Config, 'telegram'>,
  name: string,
  fetchFn: typeof fetch,
  now: Date,
): Promise<string> {
  return (await getChatInfo(config, name, fetchFn, now)).id;
}

/**
 * What the Bot API's getChat says of a chat (https://core.telegram.org/bots/api#getchat,
 * ChatFullInfo): its id, type, and `username` — which a group, supergroup or channel has only
 * when it is public, readable by anyone.
 */
export async function getChatInfo(
  config: Pick<Config, 'telegram'>,
  name: string,
  fetchFn: typeof fetch,
  now: Date,
): Promise<{ id: string; type: string; username?: string }> {
  if (!config.telegram.botToken)
    throw new PermanentError('telegram: TELEGRAM_BOT_TOKEN is not set');
  const {
    reply,
    answer: parsed,
    label,
  } = await callBotApi<{
    id?: unknown;
    type?: unknown;
    username?: unknown;
  }>(config.telegram, 'getChat', { chat_id: name }, { fetch: fetchFn });
  if (reply.status === 400 || reply.status === 403) {
    throw new PermanentError(
      `telegram: chat ${name} not found (${parsed.description === undefined ? reply.status : JSON.stringify(parsed.description)}); is the bot a member?`,
    );
  }
  failOnStatus(reply, label, now);
  const id = parsed.result?.id;
  if (parsed.ok !== true || (typeof id !== 'number' && typeof id !== 'string')) {
    throw new PermanentError(`telegram getChat answered without a chat id for ${name}`);
  }
  const { type, username } = parsed.result ?? {};
  return {
    id: String(id),
    type: typeof type === 'string' ? type : '',
    ...(typeof username === 'string' && username ? { username } : {}),
  };
}

/**
 * Why a portal may not make `chat` its alert chat, without asking Telegram (the settings
 * page): the operator's chat, or a chat another portal holds, by id or by an `@name` already
 * resolved. An `@name` not seen yet is checked when the first alert goes out (`admit`).
 */
export async function telegramChatRefusal(
  deps: Pick<TelegramChatDeps, 'db' | 'config'>,
  portalId: number,
  chat: string,
): Promise<string | undefined> {
  const name = canonicalChat(chat);
  const idOf = async (c: string) =>
    c.startsWith('@')
      ? (await telegramChatByUsername(deps.db, c.slice(1).toLowerCase()))?.chat_id
      : c;
  const id = await idOf(name);
  const operator = deps.config.telegram.chatId && canonicalChat(deps.config.telegram.chatId);
  if (operator && (operator === name || (id !== undefined && (await idOf(operator)) === id))) {
    return "this is the server's alert chat; use a chat of your own";
  }
  if (id !== undefined && (await chatOwner(deps.db, id, portalId)) === 'other') {
    return 'this chat is used by another portal of this app; use a chat of your own, or link this one below if it is yours';
  }
  return undefined;
}
