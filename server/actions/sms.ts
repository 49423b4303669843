import { PermanentError, RetryableError } from '../lib/retry-errors.js';
import { systemClock } from '../lib/clock.js';
import type { SmsAction } from '../rules/model.js';
import {
  callHttp,
  failOnStatus,
  maskUrl,
  withoutValues,
  withoutValuesDeep,
  type HttpReply,
} from './http-call.js';
import type { ActionContext, ActionResult } from './types.js';

const TIMEOUT_MS = 15_000;
/** Credentials shorter than this are not masked in a step's output (Twilio's SID is 34). */
const MIN_OUTPUT_SECRET = 8;

/** `+7 (900) 123-45-67` → `+79001234567`; throws when no phone number is left. */
export function normalisePhone(raw: string): string {
  const p = raw.trim().replace(/[\s().-]/g, '');
  if (!/^\+?\d{6,15}$/.test(p)) {
    throw new PermanentError(`sms step: "${raw}" is not a phone number`);
  }
  return p;
}

interface Request {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * `SMS_PROVIDER=generic`: POST JSON `{to, text, from}` to `SMS_URL` with
 * `Authorization: Bearer SMS_TOKEN` (when set) and `Idempotency-Key`.
 */
function generic(to: string, text: string, ctx: ActionContext): Request {
  const { url, token, from } = ctx.config.sms;
  if (!url) throw new PermanentError('sms step: SMS_PROVIDER=generic needs SMS_URL');
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'idempotency-key': ctx.idempotencyKey,
  };
  if (token) headers.authorization = `Bearer ${token}`;
  return { url, headers, body: JSON.stringify({ to, text, from: from ?? null }) };
}

/**
 * `SMS_PROVIDER=twilio`: the Programmable Messaging API
 * (https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource):
 * form POST to `<SMS_URL or https://api.twilio.com>/2010-04-01/Accounts/<SMS_LOGIN>/Messages.json`
 * with Basic auth SMS_LOGIN:SMS_TOKEN and fields To, From (SMS_FROM), Body.
 */
function twilio(to: string, text: string, ctx: ActionContext): Request {
  const { url, token, login, from } = ctx.config.sms;
  if (!login || !token || !from) {
    throw new PermanentError(
      'sms step: SMS_PROVIDER=twilio needs SMS_LOGIN (Account SID), SMS_TOKEN and SMS_FROM',
    );
  }
  const base = url ?? 'https://api.twilio.com';
  return {
    url: `${base}/2010-04-01/Accounts/${encodeURIComponent(login)}/Messages.json`,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${login}:${token}`).toString('base64')}`,
    },
    body: new URLSearchParams({ To: to, From: from, Body: text }).toString(),
  };
}

/**
 * `SMS_PROVIDER=smsru`: sms.ru `sms/send` (https://sms.ru/api/send) as a form POST with
 * api_id (SMS_TOKEN), to, msg, json=1 and from (SMS_FROM) when set; base URL SMS_URL or
 * https://sms.ru. The key travels in the body, not the URL, so proxies do not log it.
 */
function smsru(to: string, text: string, ctx: ActionContext): Request {
  const { url, token, from } = ctx.config.sms;
  if (!token) throw new PermanentError('sms step: SMS_PROVIDER=smsru needs SMS_TOKEN (api_id)');
  const form = new URLSearchParams({
    api_id: token,
    to: to.replace(/^\+/, ''),
    msg: text,
    json: '1',
  });
  if (from) form.set('from', from);
  return {
    url: `${url ?? 'https://sms.ru'}/sms/send`,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  };
}

/** sms.ru status codes worth retrying: 220 service unavailable, and 231 (below). */
const SMSRU_RETRY = new Set([220]);
/**
 * 231: this number had the same text within the minute. A refusal of this one message, not
 * the gateway being down, so it never counts toward the shared gateway's circuit (one portal
 * repeating a text would open it for every portal), and it is tried again after the minute.
 */
const SMSRU_SAME_TEXT = 231;

/** sms.ru answers HTTP 200 with `{status: "ERROR", status_code}`, also per number. */
function checkSmsru(reply: HttpReply, label: string): void {
  const b = reply.body as {
    status?: string;
    status_code?: number;
    status_text?: string;
    sms?: Record<string, { status?: string; status_code?: number; status_text?: string }>;
  };
  const fail = (code: number | undefined, text: string | undefined) => {
    const msg = `sms.ru refused the message via ${label}: ${code ?? '?'} ${text ?? ''}`.trim();
    if (code === SMSRU_SAME_TEXT) {
      throw new RetryableError(msg, { refusedRequest: true, retryAfterMs: 60_000 });
    }
    if (code !== undefined && SMSRU_RETRY.has(code)) throw new RetryableError(msg);
    throw new PermanentError(msg);
  };
  if (typeof b !== 'object' || b === null)
    throw new RetryableError(`sms.ru answered without JSON via ${label}`);
  if (b.status !== 'OK') fail(b.status_code, b.status_text);
  for (const s of Object.values(b.sms ?? {})) {
    if (s.status !== 'OK') fail(s.status_code, s.status_text);
  }
}

/**
 * sms.ru answers each send with the operator's account `balance` (https://sms.ru/api/send):
 * the step's response is shown to the users of every portal that texts, so it is left out.
 */
function withoutBalance(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || !('balance' in body)) return body;
  const { balance: _balance, ...rest } = body as Record<string, unknown>;
  return rest;
}

/** An `sms` step through `SMS_PROVIDER` (generic, twilio or smsru). */
export async function runSms(action: SmsAction, ctx: ActionContext): Promise<ActionResult> {
  const provider = ctx.config.sms.provider;
  if (!provider)
    throw new PermanentError('sms step: SMS_PROVIDER is not set (generic, twilio or smsru)');
  const to = normalisePhone(String(action.to));
  const text = String(action.text);
  const req =
    provider === 'twilio'
      ? twilio(to, text, ctx)
      : provider === 'smsru'
        ? smsru(to, text, ctx)
        : generic(to, text, ctx);
  const label = `POST ${maskUrl(req.url)}`;
  const now = (ctx.clock ?? systemClock).now();
  const reply = await callHttp({
    method: 'POST',
    ...req,
    timeoutMs: TIMEOUT_MS,
    fetch: ctx.fetch ?? globalThis.fetch,
    label,
  });
  // The error is shown to the users of every portal that sends SMS: a gateway's refusal that
  // quotes the operator's credentials ("token … is not valid") must not carry them there.
  const { token, login } = ctx.config.sms;
  const credentials = [token, login, req.headers.authorization]
    .filter((v): v is string => typeof v === 'string' && v.length >= 4)
    .sort((a, b) => b.length - a.length);
  failOnStatus({ ...reply, text: withoutValues(reply.text, credentials) }, label, now);
  if (provider === 'smsru') checkSmsru(reply, label);
  return {
    status: 'succeeded',
    request: {
      type: 'sms',
      provider,
      method: 'POST',
      url: maskUrl(req.url),
      to,
      bytes: Buffer.byteLength(req.body),
    },
    response: {
      status: reply.status,
      ms: reply.ms,
      // The operator's account and token only: a short login ("shop") would mask words.
      body: withoutValuesDeep(
        withoutBalance(reply.body),
        credentials.filter((v) => v.length >= MIN_OUTPUT_SECRET),
      ),
    },
  };
}
