import type { Config } from '../config.js';
import { callHttp } from './http-call.js';
import { createMailer, type Mailer } from './mailer.js';
import { callBotApi } from './telegram-bot.js';

/**
 * Whether one of the operator's shared channels answers at all, asked with a request of the
 * operator's own that sends nothing: Telegram's `getMe`, an SMTP login (`verify`), the SMS
 * gateway's account check (sms.ru `auth/check`, Twilio's account) or, for a generic gateway,
 * a bare GET of its URL. True when the channel answered (any answer but a 5xx, a timeout or no
 * connection), false when it did not.
 *
 * What a portal's step sends through these channels is the portal's to choose, and two
 * portals (anyone may open two) could have their texts refused with 500 on purpose. So the
 * portals' failures alone never open a shared channel for everyone: its breaker asks this
 * first (server/queue/destinations.ts).
 */
export type ChannelCheck = (key: string) => Promise<boolean>;

/** How long a check may take: a channel that does not answer within it is down. */
export const CHANNEL_CHECK_TIMEOUT_MS = 10_000;

export interface ChannelCheckDeps {
  config: Pick<Config, 'telegram' | 'email' | 'sms'>;
  mailer?: Mailer;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

export function createChannelCheck(deps: ChannelCheckDeps): ChannelCheck {
  const timeoutMs = deps.timeoutMs ?? CHANNEL_CHECK_TIMEOUT_MS;
  const fetchFn = deps.fetch ?? globalThis.fetch;
  const { telegram, email, sms } = deps.config;
  /** An HTTP answer counts unless it is a 5xx; a timeout or no connection is down. */
  const answers = async (run: () => Promise<{ status: number }>) => {
    try {
      return (await run()).status < 500;
    } catch {
      return false;
    }
  };
  return async (key) => {
    if (key.startsWith('telegram:')) {
      if (!telegram.botToken) return true;
      return answers(
        async () => (await callBotApi(telegram, 'getMe', {}, { fetch: fetchFn, timeoutMs })).reply,
      );
    }
    if (key.startsWith('smtp:')) {
      if (!email.smtpUrl) return true;
      // Without a mailer (the rule builder's test sends) a transport of its own, closed after:
      // a check that is not made must never read as "it answers".
      const own = deps.mailer ? undefined : createMailer();
      const transport = (deps.mailer ?? own!).transport(email.smtpUrl);
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          transport.verify(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('timed out')), timeoutMs);
          }),
        ]);
        return true;
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
        own?.close();
      }
    }
    if (key.startsWith('sms:')) return smsAnswers(sms, fetchFn, timeoutMs);
    return true;
  };
}

async function smsAnswers(
  sms: Config['sms'],
  fetchFn: typeof fetch,
  timeoutMs: number,
): Promise<boolean> {
  const call = (
    url: string,
    init: { method: string; headers?: Record<string, string>; body?: string },
  ) =>
    callHttp({
      method: init.method,
      url,
      headers: init.headers ?? {},
      body: init.body,
      timeoutMs,
      fetch: fetchFn,
      label: `${init.method} (SMS gateway check)`,
    });
  try {
    if (sms.provider === 'smsru') {
      // https://sms.ru/api/auth: checks the key and sends nothing; 220 is the service down.
      const reply = await call(`${sms.url ?? 'https://sms.ru'}/auth/check`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ api_id: sms.token ?? '', json: '1' }).toString(),
      });
      const code = (reply.body as { status_code?: unknown } | undefined)?.status_code;
      return reply.status < 500 && code !== 220;
    }
    if (sms.provider === 'twilio') {
      const base = sms.url ?? 'https://api.twilio.com';
      const reply = await call(
        `${base}/2010-04-01/Accounts/${encodeURIComponent(sms.login ?? '')}.json`,
        {
          method: 'GET',
          headers: {
            authorization: `Basic ${Buffer.from(`${sms.login ?? ''}:${sms.token ?? ''}`).toString('base64')}`,
          },
        },
      );
      return reply.status < 500;
    }
    if (!sms.url) return true;
    // A generic gateway has no account call we know of: any answer to a GET (405 too) is up.
    return (await call(sms.url, { method: 'GET' })).status < 500;
  } catch {
    return false;
  }
}
