import { bitrixApiError, type BitrixFailure } from './errors.js';

export type FetchFn = typeof fetch;

/** A REST answer: `result` plus what list methods add. */
export interface RestAnswer<T = unknown> {
  result: T;
  total?: number;
  next?: number;
  /** `time` of the answer (operating figures, b24restdocs limits.md). */
  time?: unknown;
}

/** An HTTP answer whose body was read; `json` is undefined when it was not a JSON object. */
export interface JsonAnswer {
  status: number;
  json: Record<string, unknown> | undefined;
  /** The host a redirect's `Location` names (a renamed portal), when there is one. */
  movedTo?: string;
}

/** The code of a portal's redirect: its address changed (call.ts learns the new one). */
export const PORTAL_MOVED = 'PORTAL_MOVED';

/** Most bytes of an answer read from a portal or an OAuth server. */
export const ANSWER_CAP_BYTES = 32 * 1024 * 1024;

/** The body as text, or undefined past `cap` bytes (the rest is not read). */
async function readCapped(res: Response, cap: number): Promise<string | undefined> {
  if (!res.body) return '';
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > cap) {
    await res.body.cancel().catch(() => undefined);
    return undefined;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The one way a request leaves for Bitrix24 (a portal's REST endpoint or an OAuth server):
 * no redirect is followed, an answer must arrive within `timeoutMs`, and a request that got
 * no answer fails as the `unreachable` failure the caller describes (retryable).
 */
export async function requestJson(
  fetchFn: FetchFn,
  url: string,
  init: { contentType: string; body: string; timeoutMs: number },
  unreachable: (timedOut: boolean) => BitrixFailure,
): Promise<JsonAnswer> {
  let res: Response;
  try {
    res = await fetchFn(url, {
      method: 'POST',
      headers: { 'Content-Type': init.contentType, Accept: 'application/json' },
      body: init.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(init.timeoutMs),
    });
  } catch (e) {
    throw bitrixApiError(unreachable((e as Error).name === 'TimeoutError'), e);
  }
  const raw = await readCapped(res, ANSWER_CAP_BYTES);
  if (raw === undefined) {
    // Not Bitrix24's answer (its largest, a batch of 50 lists, is a few MB): a portal name
    // under a zone no one checks could answer without end.
    throw bitrixApiError({
      ...unreachable(false),
      bitrixCode: 'ANSWER_TOO_LARGE',
      httpStatus: res.status,
      description: `the answer is over ${ANSWER_CAP_BYTES / 1024 / 1024} MB`,
    });
  }
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      json = parsed as Record<string, unknown>;
    }
  } catch {
    json = undefined;
  }
  const location = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
  let movedTo: string | undefined;
  if (location) {
    try {
      movedTo = new URL(location, url).host.toLowerCase();
    } catch {
      movedTo = undefined;
    }
  }
  return { status: res.status, json, ...(movedTo ? { movedTo } : {}) };
}

/**
 * One REST request: POST `<base><method>` with a JSON body, `auth` added when a token is
 * given (b24restdocs settings/how-to-call-rest-api/general-principles.md). OAuth portals,
 * inbound webhooks and probes all go this way (call.ts). The caller has already checked
 * that `base` is the portal's allowed address.
 */
export async function postRest<T>(
  fetchFn: FetchFn,
  base: string,
  method: string,
  params: object,
  opts: { accessToken?: string; timeoutMs?: number } = {},
): Promise<RestAnswer<T>> {
  const url = `${base.endsWith('/') ? base : `${base}/`}${encodeURIComponent(method)}`;
  const body = opts.accessToken ? { ...params, auth: opts.accessToken } : params;
  const { status, json, movedTo } = await requestJson(
    fetchFn,
    url,
    {
      contentType: 'application/json',
      body: JSON.stringify(body),
      timeoutMs: opts.timeoutMs ?? 30_000,
    },
    (timedOut) => ({
      bitrixCode: timedOut ? 'REQUEST_TIMEOUT' : 'NETWORK_ERROR',
      httpStatus: 0,
      method,
      description: timedOut ? 'no answer in time' : 'the portal could not be reached',
    }),
  );
  if (status >= 300 && status < 400) {
    // DOCS:settings/how-to-call-rest-api/change-domen.md: the old address of a renamed
    // portal answers 301/302 with the new one in Location. Only the host is kept: an inbound
    // webhook's Location carries its key.
    throw bitrixApiError({
      bitrixCode: PORTAL_MOVED,
      httpStatus: status,
      method,
      description: `the portal's address changed (redirected to ${movedTo ?? 'an unreadable Location'})`,
    });
  }
  if (status >= 300 || !json || json.error !== undefined) {
    const code = typeof json?.error === 'string' ? json.error : '';
    const description =
      typeof json?.error_description === 'string' ? json.error_description.slice(0, 300) : '';
    throw bitrixApiError({
      bitrixCode: code || (json ? 'ERROR' : 'ERROR_UNEXPECTED_ANSWER'),
      httpStatus: status,
      method,
      description,
      time: json?.time,
    });
  }
  const out: RestAnswer<T> = { result: json.result as T, time: json.time };
  if (typeof json.total === 'number') out.total = json.total;
  if (typeof json.next === 'number') out.next = json.next;
  return out;
}
