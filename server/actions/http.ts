import { PermanentError } from '../lib/retry-errors.js';
import { systemClock } from '../lib/clock.js';
import type { HttpAction, Secret } from '../rules/model.js';
import { isPlainHeader, MASK } from '../rules/secret-fields.js';
import { maskPathSecrets } from '../lib/url-secrets.js';
import { callHttp, failOnStatus, maskUrl, withoutValues } from './http-call.js';
import { createHttpGuard } from '../lib/http-guard.js';
import { standardWebhookHeaders } from './signature.js';
import type { ActionContext, ActionResult } from './types.js';

export const DEFAULT_HTTP_TIMEOUT_MS = 10_000;

/** Whether a Content-Type means JSON (`application/json`, `application/problem+json`, …). */
/** A credential field as text: the processor opens stored ones (openAction) before sending. */
function opened(v: Secret, field: string): string {
  if (typeof v === 'string') return v;
  throw new PermanentError(`http step: ${field} is still sealed or an $env reference`);
}

/** Credentials shorter than this are not looked for in answers (they would mask common words). */
const MIN_CREDENTIAL_LENGTH = 4;
const SECRET_QUERY = /token|key|secret|pass|auth|sig|api_id|apikey/i;

/**
 * The step's credentials as they are sent: the values of its headers but the plain ones (and
 * the token after a scheme word, `Bearer x`), its signing secret, the URL's password, its
 * secret-looking query values and the path segments that are a key (a webhook URL,
 * server/lib/url-secrets.ts). Longest first, so a value containing another is masked whole.
 */
function credentialValues(
  headers: Record<string, string>,
  secret: string | undefined,
  password: string,
  url: URL,
) {
  const values = new Set<string>();
  for (const [k, v] of Object.entries(headers)) {
    if (isPlainHeader(k)) continue;
    values.add(v);
    const token = /^\S+\s+(\S+)$/.exec(v.trim())?.[1];
    if (token) values.add(token);
  }
  if (secret) values.add(secret);
  if (password) {
    values.add(password);
    try {
      values.add(decodeURIComponent(password));
    } catch {
      // not percent-encoded text: the password as written is looked for
    }
  }
  for (const [k, v] of url.searchParams) if (SECRET_QUERY.test(k)) values.add(v);
  // A webhook URL that is its own key: the path segments masked as credentials.
  const segs = url.pathname.split('/');
  const masked = maskPathSecrets(url.pathname, MASK).split('/');
  segs.forEach((s, i) => {
    if (masked[i] !== s) values.add(s.replace(/^bot/, ''));
  });
  return [...values]
    .filter((v) => v.length >= MIN_CREDENTIAL_LENGTH)
    .sort((a, b) => b.length - a.length);
}

const isJsonType = (ct: string | undefined) => ct === undefined || /[/+]json\b/i.test(ct);

/**
 * An `http` step: sends the rendered request with `Idempotency-Key`, and a Standard Webhooks
 * signature when the step has a `secret`. The response body (JSON parsed) becomes the step's
 * output.
 */
export async function runHttp(action: HttpAction, ctx: ActionContext): Promise<ActionResult> {
  let url: URL;
  const rawUrl = opened(action.url, 'url');
  try {
    url = new URL(rawUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new PermanentError(`http step: expected an http(s) URL, got "${maskUrl(rawUrl)}"`);
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(action.headers ?? {})) {
    headers[k.toLowerCase()] = opened(v, `headers.${k}`);
  }
  const secret = action.secret === undefined ? undefined : opened(action.secret, 'secret');
  let body: string | undefined;
  if (action.body !== undefined && action.method !== 'GET') {
    if (typeof action.body === 'string' && !isJsonType(headers['content-type'])) body = action.body;
    else {
      body = JSON.stringify(action.body);
      headers['content-type'] ??= 'application/json';
    }
  }
  const password = url.password;
  // user:password in the URL becomes Basic auth (fetch refuses credentials in URLs).
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    headers.authorization ??= `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  const credentials = credentialValues(headers, secret, password, url);
  headers['idempotency-key'] = ctx.idempotencyKey;
  const now = (ctx.clock ?? systemClock).now();
  if (secret) {
    Object.assign(headers, standardWebhookHeaders(secret, ctx.idempotencyKey, now, body ?? ''));
  }
  headers['user-agent'] ??= 'b24hooks';
  const label = `${action.method} ${maskUrl(url.toString())}`;
  // The URL is the rule author's: connect only where the address policy allows.
  const guard = ctx.guard ?? createHttpGuard(ctx.config.actions.privateHosts);
  let reply;
  try {
    reply = await callHttp({
      method: action.method,
      url: url.toString(),
      headers,
      body,
      timeoutMs: Math.min(
        action.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
        ctx.config.worker.stepTimeoutMaxMs,
      ),
      fetch: guard.fetch,
      label,
      guard,
      credentialHeaders: Object.keys(headers).filter((h) => !isPlainHeader(h)),
    });
  } finally {
    if (!ctx.guard) await guard.close();
  }
  // A refusal often quotes what it was given ("key … is not valid"), and the error is shown to
  // every user of the portal (event page, log, deal tab, CSV export): not the step's credentials.
  failOnStatus({ ...reply, text: withoutValues(reply.text, credentials) }, label, now);
  return {
    status: 'succeeded',
    request: {
      type: 'http',
      method: action.method,
      url: maskUrl(url.toString()),
      headers: Object.keys(headers),
      bytes: body === undefined ? 0 : Buffer.byteLength(body),
      signed: secret !== undefined,
    },
    response: { status: reply.status, ms: reply.ms, body: reply.body },
  };
}
