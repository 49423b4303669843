import type { Config } from '../config.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { HttpGuard } from '../lib/http-guard.js';
import type { Mailer } from './mailer.js';
import type { MailRoutes } from '../lib/mail-route.js';

/** Calls a Bitrix24 REST method on the event's portal; supplied by the processor. */
export type BitrixCall = (method: string, params: object) => Promise<unknown>;

/** What an action executor may use. Everything is injected; executors keep no state. */
export interface ActionContext {
  config: Config;
  logger: Logger;
  /**
   * Stable per (event, rule, step): sent as `Idempotency-Key` (and `webhook-id`) so receivers
   * can drop repeats of a retried step.
   */
  idempotencyKey: string;
  /** Required by `bitrix` steps. */
  bitrix?: BitrixCall;
  /** Telegram and SMS steps (operator endpoints). @default globalThis.fetch */
  fetch?: typeof fetch;
  /**
   * Every `http` step connects through it: no loopback, private or link-local address
   * outside ACTION_PRIVATE_HOSTS (http-guard.ts). Without it a step builds a guard from
   * `config` for its one request.
   */
  guard?: HttpGuard;
  /** Keeps one SMTP transport per URL; without it an `email` step opens and closes its own. */
  mailer?: Mailer;
  /**
   * Where the operator's SMTP server would deliver a domain's mail (its MX hosts' addresses):
   * an `email` step of a portal is refused for a domain whose mail goes into the server's
   * network (email.ts). Without it only the domain's name is judged.
   */
  mailRoutes?: MailRoutes;
  /**
   * The recipients are the operator's (ALERT_EMAIL_TO): not held to public mail domains, as
   * a portal's are (email.ts `refusedRecipient`).
   */
  operatorRecipients?: boolean;
  /** Signature timestamps and Retry-After dates. @default systemClock */
  clock?: Clock;
  /**
   * Where a `telegram` step without `chatId` goes: the portal's own alert chat, or null when
   * it has none (a portal's rules never reach the operator's TELEGRAM_CHAT_ID). Undefined
   * (no portal: one operator's own calls) means TELEGRAM_CHAT_ID.
   */
  telegramChat?: string | null;
  /**
   * A portal's `telegram` steps and alerts post through the operator's one bot: this keeps
   * them out of chats the operator or another portal holds (server/processing/telegram-chats.ts).
   * Undefined for the operator's own messages.
   */
  telegramChats?: TelegramChatGuard;
}

export interface TelegramChatGuard {
  /**
   * Throws PermanentError when the chat (an id or an `@name`) is not this portal's to post to;
   * else the chat's id, the one checked: the message goes there, not to a name that may have
   * moved to another chat since it was resolved.
   */
  admit(chat: string): Promise<string>;
  /** After a message went out: the chat (`result.chat.id`) is this portal's if no one holds it. */
  claim(chatId: string): Promise<void>;
  /**
   * The message to a chat `admit` took for this portal did not go out: the chat is given up
   * again, so that naming a chat the bot is not in does not hold it.
   */
  release(chatId: string): Promise<void>;
}

/** A short, secret-free description of what was sent (for action_runs.request_summary). */
export interface RequestSummary {
  type: string;
  method?: string;
  /** Tokens in the path or query are masked. */
  url?: string;
  to?: string | string[];
  /** Names only, never values. */
  headers?: string[];
  bytes?: number;
  [key: string]: unknown;
}

/** What came back; `body` is what later steps read as `{{steps.<name>.response…}}`. */
export interface ResponseSummary {
  status?: number;
  ms?: number;
  body?: unknown;
  [key: string]: unknown;
}

export interface ActionResult {
  status: 'succeeded';
  request: RequestSummary;
  response: ResponseSummary;
}
