import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import type { Deps } from '../deps.js';
import { uiLang } from '../lib/lang.js';
import type { PortalRow } from '../../db/stores/portals.js';
import {
  getLinkCode,
  linkTelegramChat,
  dropLinkCode,
  reserveLinkCode,
  rememberTelegramUsername,
  takeLinkCodeTry,
  telegramChatByUsername,
  telegramChatLinks,
} from '../../db/stores/telegram-chats.js';
import { callBotApi } from '../actions/telegram-bot.js';
import { canonicalChat, TELEGRAM_CHAT } from '../lib/telegram-chat.js';
import { getChatId, getChatInfo } from '../processing/telegram-chats.js';

/** How long a code sent to a chat can be typed back, and how soon another may be asked for. */
export const LINK_CODE_TTL_MS = 10 * 60_000;
/** Wrong codes allowed per code sent: 5 guesses of 10^8 (a new code needs another message). */
export const LINK_CODE_TRIES = 5;
/**
 * Codes a portal may ask for, whatever the chat or the outcome, per LINK_CODE_TTL_MS (per
 * instance): every request is a Bot API call on the operator's one bot, whose rate limit
 * all portals share.
 */
export const LINK_CODE_REQUESTS = 5;
const requests = new Map<string, number[]>();
const NUMERIC = /^-?\d{1,20}$/;

const digest = (portalId: number, chatId: string, code: string) =>
  createHash('sha256').update(`${portalId}:${chatId}:${code}`).digest('hex');

/**
 * `ended`: the code can no longer be typed (expired, never sent, out of tries): ask anew.
 * `pending`: no new code, but the one sent to this chat id a moment ago can still be typed.
 */
export type LinkResult =
  { ok: true; chatId: string } | { error: string; ended?: true; pending?: string };

/** The numeric id of what an admin typed (an `@name` is asked of the Bot API, then remembered). */
async function chatIdOf(deps: Deps, chat: string): Promise<string> {
  if (NUMERIC.test(chat)) return canonicalChat(chat);
  const username = chat.slice(1).toLowerCase();
  const known = await telegramChatByUsername(deps.db, username);
  if (known) return known.chat_id;
  const id = await getChatId(deps.config, chat, globalThis.fetch, deps.clock.now());
  await rememberTelegramUsername(deps.db, id, username, deps.clock.now().getTime());
  return id;
}

/**
 * "Send a code": the bot posts a one-time code into the chat, saying which portal asks; typing
 * it back on the portal's Alerts page (linkWithCode) proves the admin reads that chat. One
 * code per portal and chat every LINK_CODE_TTL_MS, so a portal cannot use it to post into a
 * stranger's chat more often than that.
 */
export async function sendLinkCode(
  deps: Deps,
  portal: PortalRow,
  input: string,
): Promise<LinkResult> {
  const chat = input.trim();
  if (!TELEGRAM_CHAT.test(chat)) {
    return { error: 'Telegram chat id: a number like -1001234567890 or @channel_name' };
  }
  const { botToken, chatId: operator } = deps.config.telegram;
  if (!botToken)
    return { error: 'Telegram is not configured on this server (TELEGRAM_BOT_TOKEN).' };
  const now = deps.clock.now().getTime();
  const recent = (requests.get(portal.member_id) ?? []).filter((t) => now - t < LINK_CODE_TTL_MS);
  if (recent.length >= LINK_CODE_REQUESTS) {
    return { error: 'too many codes asked for in 10 minutes: try again later' };
  }
  recent.push(now);
  requests.set(portal.member_id, recent);
  let chatId: string;
  try {
    chatId = await chatIdOf(deps, chat);
    const operatorId = operator ? await chatIdOf(deps, operator).catch(() => operator) : undefined;
    if (operator && (operatorId === chatId || canonicalChat(operator) === canonicalChat(chat))) {
      return { error: "this is the server's alert chat; use a chat of your own" };
    }
    // A code posted into a public chat proves nothing: anyone can read it there.
    const info = await getChatInfo(deps.config, chatId, globalThis.fetch, deps.clock.now());
    if (info.username && info.type !== 'private') {
      return {
        error: `@${info.username} is a public chat, where anyone can read a code: it cannot be linked (the first portal to post there holds it); link a private group or channel`,
      };
    }
  } catch (e) {
    return { error: (e as Error).message };
  }
  if ((await telegramChatLinks(deps.db, chatId)).includes(portal.id)) {
    return { error: 'this chat is already linked to this portal' };
  }
  const last = await getLinkCode(deps.db, portal.id, chatId);
  if (last && now < last.sent_at + LINK_CODE_TTL_MS) {
    // The admin is told to type the code already sent, so the page offers its field again
    // (they may have left the page to read the chat); one out of tries cannot be typed.
    return last.tries < LINK_CODE_TRIES
      ? {
          error:
            'a code was sent to this chat less than 10 minutes ago: type that one, or ask again later',
          pending: chatId,
        }
      : {
          error:
            'the code sent to this chat less than 10 minutes ago was typed wrong too often: ask for a new one later',
        };
  }
  const code = String(randomInt(0, 100_000_000)).padStart(8, '0');
  const codeDigest = digest(portal.id, chatId, code);
  // Reserved before it is sent, so that requests sent at once post one code between them.
  const reserved = await reserveLinkCode(
    deps.db,
    portal.id,
    chatId,
    { code_digest: codeDigest, sent_at: now, expires_at: now + LINK_CODE_TTL_MS },
    now - LINK_CODE_TTL_MS,
  );
  if (!reserved) {
    return {
      error:
        'a code was sent to this chat less than 10 minutes ago: type that one, or ask again later',
      pending: chatId,
    };
  }
  const refused = await postCode(deps, chatId, chat, code, portal);
  if (refused !== undefined) {
    // Not delivered: the portal may ask again at once.
    await dropLinkCode(deps.db, portal.id, chatId, codeDigest);
    return { error: refused };
  }
  return { ok: true, chatId };
}

/** The bot posts `code` into `chatId`: undefined when Telegram took it, else why not. */
async function postCode(
  deps: Deps,
  chatId: string,
  chat: string,
  code: string,
  portal: PortalRow,
): Promise<string | undefined> {
  const shown = `${code.slice(0, 4)} ${code.slice(4)}`;
  const text =
    uiLang(portal.lang) === 'ru'
      ? `b24hooks: код ${shown} привяжет этот чат к порталу ${portal.domain}. Введите его на странице «Оповещения» приложения в течение 10 минут. Если никто здесь его не запрашивал, не обращайте внимания на это сообщение.`
      : `b24hooks: the code ${shown} links this chat to the portal ${portal.domain}. Type it on the app's Alerts page within 10 minutes. If no one here asked for it, ignore this message.`;
  try {
    const { reply, answer: parsed } = await callBotApi(deps.config.telegram, 'sendMessage', {
      chat_id: chatId,
      text,
    });
    if (reply.status === 400 || reply.status === 403) {
      return `Telegram did not deliver the code to chat ${chat} (${parsed.description === undefined ? reply.status : JSON.stringify(String(parsed.description).slice(0, 200))}); is the bot a member?`;
    }
    if (parsed.ok !== true) {
      return `Telegram did not accept the code: HTTP ${reply.status}; try again later`;
    }
  } catch (e) {
    return `Telegram did not answer (${(e as Error).message}); try again later`;
  }
  return undefined;
}

/** "Link": the code the bot sent to `chatId` for this portal, typed back. */
export async function linkWithCode(
  deps: Deps,
  portal: PortalRow,
  chatId: string,
  input: string,
): Promise<LinkResult> {
  const code = input.replace(/[\s-]/g, '');
  chatId = canonicalChat(chatId);
  const row = NUMERIC.test(chatId) ? await getLinkCode(deps.db, portal.id, chatId) : undefined;
  const now = deps.clock.now().getTime();
  if (!row || now >= row.expires_at) {
    return { error: 'the code has expired or was never sent: ask for a new one', ended: true };
  }
  // The try is taken before the code is compared, so guesses sent at once count one each.
  if (
    row.tries >= LINK_CODE_TRIES ||
    !(await takeLinkCodeTry(deps.db, portal.id, chatId, LINK_CODE_TRIES, now))
  ) {
    return { error: 'too many wrong codes: ask for a new one', ended: true };
  }
  const given = Buffer.from(digest(portal.id, chatId, code));
  if (!/^\d{8}$/.test(code) || !timingSafeEqual(given, Buffer.from(row.code_digest))) {
    const left =
      LINK_CODE_TRIES - ((await getLinkCode(deps.db, portal.id, chatId))?.tries ?? LINK_CODE_TRIES);
    return left > 0
      ? { error: `wrong code; tries left: ${left}` }
      : { error: 'too many wrong codes: ask for a new one', ended: true };
  }
  await linkTelegramChat(deps.db, chatId, portal.id, now);
  return { ok: true, chatId };
}

/** The operator's bot's @username (getMe), kept per process: a failure is asked again later. */
const botNames = new Map<string, { at: number; name: Promise<string | undefined> }>();
const BOT_NAME_RETRY_MS = 60_000;

/**
 * The @username of the operator's bot, which an admin must add to a chat before linking it
 * (Bot API getMe, https://core.telegram.org/bots/api#getme); undefined while Telegram does
 * not answer. Asked once per bot token and process, again a minute after a failure.
 */
export function telegramBotName(
  deps: Pick<Deps, 'config' | 'clock'>,
  fetchFn?: typeof fetch,
): Promise<string | undefined> {
  const { telegram } = deps.config;
  if (!telegram.botToken) return Promise.resolve(undefined);
  const key = `${telegram.apiUrl}\u0000${telegram.botToken}`;
  const now = deps.clock.now().getTime();
  const known = botNames.get(key);
  if (known && (known.at === 0 || now - known.at < BOT_NAME_RETRY_MS)) return known.name;
  const entry = { at: now, name: Promise.resolve<string | undefined>(undefined) };
  entry.name = callBotApi<{ username?: string }>(telegram, 'getMe', {}, { fetch: fetchFn }).then(
    ({ answer }) => {
      const name =
        answer.ok && typeof answer.result?.username === 'string'
          ? answer.result.username
          : undefined;
      if (name) entry.at = 0; // kept for good
      return name;
    },
    () => undefined,
  );
  botNames.set(key, entry);
  return entry.name;
}
