import { PermanentError, RetryableError } from '../queue/errors.js';

export interface HttpCall {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | undefined;
  timeoutMs: number;
  fetch: typeof fetch;
  /** How errors name the request, secret-free: `POST https://host/path`. */
  label: string;
}

export interface HttpReply {
  status: number;
  headers: Headers;
  /** JSON when the body parses as JSON, else the text (cut at 10 000 characters). */
  body: unknown;
  text: string;
  ms: number;
}

const TEXT_CAP = 10_000;

/** Sends one request. Network trouble and timeouts throw RetryableError; any status returns. */
export async function callHttp(call: HttpCall): Promise<HttpReply> {
  const started = performance.now();
  let res: Response;
  let text: string;
  try {
    res = await call.fetch(call.url, {
      method: call.method,
      headers: call.headers,
      body: call.body,
      signal: AbortSignal.timeout(call.timeoutMs),
    });
    text = await res.text();
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    if (err.name === 'TimeoutError' || err.name === 'AbortError') {
      throw new RetryableError(`${call.label} timed out after ${call.timeoutMs} ms`, { cause: e });
    }
    const code = err.cause?.code ? ` (${err.cause.code})` : '';
    // fetch messages may quote the full URL (a bot token, a key in the query): keep it out.
    const reason = err.message.replace(/\S+:\/\/\S+/g, '(url)');
    throw new RetryableError(`${call.label} failed: ${reason}${code}`, { cause: e });
  }
  let body: unknown = text.length > TEXT_CAP ? text.slice(0, TEXT_CAP) : text;
  if (text.trim() !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
  } else body = undefined;
  return {
    status: res.status,
    headers: res.headers,
    body,
    text,
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
    return u.toString().replace(/%2A%2A%2A/g, '***');
  } catch {
    return '(invalid URL)';
  }
}
