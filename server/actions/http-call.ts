import { PermanentError, RetryableError } from '../lib/retry-errors.js';
import { refusalOf, type HttpGuard } from '../lib/http-guard.js';
import { maskPathSecrets } from '../lib/url-secrets.js';
import { MASK } from '../rules/secret-fields.js';

export interface HttpCall {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | undefined;
  timeoutMs: number;
  fetch: typeof fetch;
  /** How errors name the request, secret-free: `POST https://host/path`. */
  label: string;
  /**
   * For URLs a rule wrote: every connection goes through the guard's dispatcher (no private
   * addresses) and redirects are followed by hand, at most `guard.maxRedirects` hops. Without
   * it (operator endpoints: Telegram, SMS) `fetch` follows redirects itself.
   */
  guard?: HttpGuard;
  /**
   * Header names dropped when a redirect leaves the origin (they carry the step's
   * credentials). `authorization` and `cookie` always are.
   */
  credentialHeaders?: readonly string[];
}

export interface HttpReply {
  status: number;
  headers: Headers;
  /**
   * JSON when the body (at most TEXT_CAP characters) parses as JSON, else the text cut at
   * TEXT_CAP characters.
   */
  body: unknown;
  /** The first TEXT_CAP characters of the body. */
  text: string;
  ms: number;
}

/** Characters of an answer kept (step output, errors, event page). */
export const TEXT_CAP = 10_000;
/** Bytes of an answer read at most; the rest is never read. */
export const READ_CAP = 1024 * 1024;

/** Reads at most READ_CAP bytes of the body, then stops the download. */
async function readCapped(res: Response): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= READ_CAP) {
      await reader.cancel().catch(() => undefined);
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, READ_CAP).toString('utf8');
}

/**
 * `text` with every occurrence of `values` replaced by the mask pages show: as written, and
 * as an answer quotes it escaped — inside a JSON string (PHP's json_encode also writes `/` as
 * `\/`) or percent-encoded, as it went in a query string or form.
 */
export function withoutValues(text: string, values: readonly string[]): string {
  const forms = new Set<string>();
  for (const v of values) {
    const json = JSON.stringify(v).slice(1, -1);
    for (const f of [v, json, json.replace(/\//g, '\\/'), encodeURIComponent(v)]) forms.add(f);
  }
  let out = text;
  for (const f of [...forms].sort((a, b) => b.length - a.length)) out = out.split(f).join(MASK);
  return out;
}

/**
 * An answer's parsed body with `withoutValues` applied to every string in it (keys too). A
 * succeeded step's answer is its output, which later steps of the portal's rules read
 * (`{{steps.sms.response.account_sid}}`): a gateway of the operator's that echoes its
 * account (Twilio's `account_sid`, in `uri` too) handed it to every portal.
 */
export function withoutValuesDeep(body: unknown, values: readonly string[]): unknown {
  if (values.length === 0) return body;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return withoutValues(v, values);
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v !== 'object' || v === null) return v;
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [withoutValues(k, values), walk(x)]),
    );
  };
  return walk(body);
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * One request, following redirects by hand through the guard: each hop is a new request
 * through the same dispatcher, so each hop's address is checked. 303, and 301/302 after a
 * POST, go on as GET without a body (as fetch does); credentials stay behind when a hop
 * leaves the origin.
 */
async function fetchGuarded(call: HttpCall, guard: HttpGuard, signal: AbortSignal) {
  let url = new URL(call.url);
  let method = call.method;
  let body = call.body;
  let headers = { ...call.headers };
  for (let hop = 0; ; hop++) {
    const res = await guard.fetch(url, { method, headers, body, signal, redirect: 'manual' });
    const location = res.headers.get('location');
    if (!REDIRECTS.has(res.status) || location === null) return res;
    await res.body?.cancel().catch(() => undefined);
    if (hop >= guard.maxRedirects) {
      throw new PermanentError(
        `${call.label}: more than ${guard.maxRedirects} redirects (last to ${maskUrl(new URL(location, url).toString())})`,
      );
    }
    const next = new URL(location, url);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new PermanentError(`${call.label}: redirect to a non-http(s) URL`);
    }
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
      if (method !== 'HEAD') method = 'GET';
      body = undefined;
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !/^content-/i.test(k)));
    }
    if (next.origin !== url.origin) {
      const drop = new Set(['authorization', 'cookie', ...(call.credentialHeaders ?? [])]);
      headers = Object.fromEntries(
        Object.entries(headers).filter(([k]) => !drop.has(k.toLowerCase())),
      );
    }
    url = next;
  }
}

/** Sends one request. Network trouble and timeouts throw RetryableError; any status returns. */
export async function callHttp(call: HttpCall): Promise<HttpReply> {
  const started = performance.now();
  let res: Response;
  let text: string;
  try {
    const signal = AbortSignal.timeout(call.timeoutMs);
    res = call.guard
      ? await fetchGuarded(call, call.guard, signal)
      : await call.fetch(call.url, {
          method: call.method,
          headers: call.headers,
          body: call.body,
          signal,
        });
    text = await readCapped(res);
  } catch (e) {
    if (e instanceof PermanentError) throw e;
    const refused = refusalOf(e);
    if (refused) {
      // Not retried: the address will not become public by waiting.
      throw new PermanentError(`${call.label} refused: ${refused.message}`, { cause: e });
    }
    const err = e as Error & { cause?: { code?: string } };
    if (err.name === 'TimeoutError' || err.name === 'AbortError') {
      throw new RetryableError(`${call.label} timed out after ${call.timeoutMs} ms`, { cause: e });
    }
    // fetch refuses the ports of other protocols (SMTP, SSH, X11, 6665-6669, 10080 …) before
    // connecting, with "bad port" as the only word: waiting will not change that.
    const cause = err.cause as { code?: string; message?: string } | undefined;
    if (!cause?.code && cause?.message === 'bad port') {
      throw new PermanentError(
        `${call.label} refused: its port is reserved for another protocol (such as SMTP, SSH or X11), so no HTTP request is sent to it; use the port the service answers HTTP on`,
        { cause: e },
      );
    }
    const code = cause?.code ? ` (${cause.code})` : '';
    // fetch messages may quote the full URL (a bot token, a key in the query): keep it out.
    const reason = err.message.replace(/\S+:\/\/\S+/g, '(url)');
    throw new RetryableError(`${call.label} failed: ${reason}${code}`, { cause: e });
  }
  const kept = text.length > TEXT_CAP ? text.slice(0, TEXT_CAP) : text;
  let body: unknown = kept;
  if (kept.trim() === '') body = undefined;
  else if (kept.length === text.length) {
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
  }
  return {
    status: res.status,
    headers: res.headers,
    body,
    text: kept,
    ms: Math.round(performance.now() - started),
  };
}

/** `Retry-After` as milliseconds from now: delta-seconds or an HTTP date. */
export function retryAfterMs(value: string | null, now: Date): number | undefined {
  if (!value) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}

/** Statuses worth retrying: the request may succeed later unchanged. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 409 || status === 425 || status === 429;
}

const preview = (text: string): string => {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? `${t.slice(0, 197)}...` : t;
};

/**
 * Throws for a non-2xx reply: RetryableError for 5xx/408/409/425/429 (with Retry-After when
 * given), PermanentError for the rest.
 */
export function failOnStatus(
  reply: HttpReply,
  label: string,
  now: Date,
  retryAfter?: number,
): void {
  if (reply.status >= 200 && reply.status < 300) return;
  const msg = `HTTP ${reply.status} from ${label}${reply.text ? `: ${preview(reply.text)}` : ''}`;
  if (isRetryableStatus(reply.status)) {
    throw new RetryableError(msg, {
      retryAfterMs: retryAfter ?? retryAfterMs(reply.headers.get('retry-after'), now),
    });
  }
  throw new PermanentError(msg);
}

const SECRET_PARAM = /token|key|secret|pass|auth|sig|api_id|apikey/i;

/** A URL safe to log: no user:password, secret-looking query values masked. */
export function maskUrl(raw: string): string {
  try {
    const u = new URL(raw);
    u.username = '';
    u.password = '';
    for (const k of [...u.searchParams.keys()]) {
      if (SECRET_PARAM.test(k)) u.searchParams.set(k, '***');
    }
    u.pathname = maskPathSecrets(u.pathname, '***');
    return u.toString().replace(/%2A%2A%2A/g, '***');
  } catch {
    return '(invalid URL)';
  }
}
