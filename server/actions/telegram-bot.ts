import type { Config } from '../config.js';
import { callHttp, type HttpReply } from './http-call.js';

/** What the Bot API answers around every method's result (https://core.telegram.org/bots/api#making-requests). */
export interface BotAnswer<R = unknown> {
  ok?: boolean;
  result?: R;
  description?: string;
  parameters?: { retry_after?: number };
}

/**
 * One Bot API call on the operator's bot: `POST TELEGRAM_API_URL/bot<token>/<method>` with a
 * JSON body. The bot token is part of the path, so the call's label (which errors and step
 * summaries quote) shows `bot***` instead; `shownUrl` is that masked URL.
 */
export async function callBotApi<R = unknown>(
  telegram: Pick<Config['telegram'], 'botToken' | 'apiUrl'>,
  method: string,
  payload: Record<string, unknown>,
  opts: { fetch?: typeof fetch; timeoutMs?: number } = {},
): Promise<{
  reply: HttpReply;
  answer: BotAnswer<R>;
  label: string;
  shownUrl: string;
  bytes: number;
}> {
  const shownUrl = `${telegram.apiUrl}/bot***/${method}`;
  const label = `POST ${shownUrl}`;
  const body = JSON.stringify(payload);
  const reply = await callHttp({
    method: 'POST',
    url: `${telegram.apiUrl}/bot${telegram.botToken}/${method}`,
    headers: { 'content-type': 'application/json' },
    body,
    timeoutMs: opts.timeoutMs ?? 10_000,
    fetch: opts.fetch ?? globalThis.fetch,
    label,
  });
  const answer = (
    typeof reply.body === 'object' && reply.body !== null ? reply.body : {}
  ) as BotAnswer<R>;
  return { reply, answer, label, shownUrl, bytes: Buffer.byteLength(body) };
}
