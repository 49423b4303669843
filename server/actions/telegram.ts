import { PausedError, PermanentError } from '../lib/retry-errors.js';
import { systemClock } from '../lib/clock.js';
import type { TelegramAction } from '../rules/model.js';
import { failOnStatus } from './http-call.js';
import { callBotApi } from './telegram-bot.js';
import type { ActionContext, ActionResult } from './types.js';

const TIMEOUT_MS = 10_000;

/**
 * A `telegram` step: Bot API `sendMessage` at `TELEGRAM_API_URL/bot<token>/sendMessage`
 * (https://core.telegram.org/bots/api#sendmessage). The chat is the step's `chatId`, else
 * the portal's own alert chat (`ctx.telegramChat`). The step's output is the sent Message
 * (`result`).
 */
export async function runTelegram(
  action: TelegramAction,
  ctx: ActionContext,
): Promise<ActionResult> {
  const { botToken, chatId: defaultChat } = ctx.config.telegram;
  if (!botToken) throw new PermanentError('telegram step: TELEGRAM_BOT_TOKEN is not set');
  const chatId = action.chatId ?? (ctx.telegramChat === undefined ? defaultChat : ctx.telegramChat);
  // A portal's step (telegramChat given) never posts to the operator's chat, named or not.
  if (ctx.telegramChat !== undefined && defaultChat && String(chatId) === String(defaultChat)) {
    throw new PermanentError(
      "telegram step: the chat is the server's alert chat (TELEGRAM_CHAT_ID), which rules may not post to",
    );
  }
  if (chatId === undefined || chatId === null || chatId === '') {
    throw new PermanentError(
      ctx.telegramChat === null
        ? "telegram step: no chatId in the step, and this portal has no alert chat of its own (set one on the app's Alerts page)"
        : 'telegram step: no chatId in the step and TELEGRAM_CHAT_ID is not set',
    );
  }
  // A portal's message goes to the chat id the guard checked: an `@name` it remembered may
  // have moved to another portal's chat since.
  const admitted = await ctx.telegramChats?.admit(String(chatId));
  const payload: Record<string, unknown> = { chat_id: admitted ?? chatId, text: action.text };
  if (action.parseMode) payload.parse_mode = action.parseMode;
  const now = (ctx.clock ?? systemClock).now();
  let call: Awaited<ReturnType<typeof callBotApi>>;
  try {
    call = await callBotApi(ctx.config.telegram, 'sendMessage', payload, {
      fetch: ctx.fetch,
      timeoutMs: TIMEOUT_MS,
    });
    const { reply, answer, label } = call;
    const retryAfter = answer.parameters?.retry_after;
    if (reply.status === 429) {
      // Telegram's flood control (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
      // a chat or the bot is sending too fast, not a failure of this message. The job waits
      // the time Telegram names without spending an attempt, so a burst of a portal's deals
      // (or another portal's flood on the one bot) does not use up its events' attempts.
      const waitMs = typeof retryAfter === 'number' && retryAfter > 0 ? retryAfter * 1000 : 30_000;
      throw new PausedError(
        `${label}: Telegram's flood control (429), sent again in ${Math.round(waitMs / 1000)} s`,
        waitMs,
      );
    }
    failOnStatus(reply, label, now, typeof retryAfter === 'number' ? retryAfter * 1000 : undefined);
    if (answer.ok !== true) {
      throw new PermanentError(
        `telegram sendMessage answered without ok: ${answer.description ?? reply.text.slice(0, 200)}`,
      );
    }
  } catch (e) {
    // Nothing went out: a chat this step took for its portal is given up again.
    if (admitted !== undefined) await ctx.telegramChats?.release(admitted);
    throw e;
  }
  const { reply, answer, shownUrl, bytes } = call;
  const sentTo = (answer.result as { chat?: { id?: unknown } } | undefined)?.chat?.id;
  if (typeof sentTo === 'number' || typeof sentTo === 'string') {
    await ctx.telegramChats?.claim(String(sentTo));
  }
  return {
    status: 'succeeded',
    request: {
      type: 'telegram',
      method: 'POST',
      url: shownUrl,
      to: String(chatId),
      bytes,
    },
    response: { status: reply.status, ms: reply.ms, body: answer.result },
  };
}
