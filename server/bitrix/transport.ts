import { bitrixApiError } from './errors.js';

export type FetchFn = typeof fetch;

/** A REST answer: `result` plus what list methods add. */
export interface RestAnswer<T = unknown> {
  result: T;
  total?: number;
  next?: number;
  /** `time` of the answer (operating figures, DOCS:limits.md). */
  time?: unknown;
}

/**
 * One REST request with plain fetch: POST `<base><method>` with a JSON body, `auth` added
 * when a token is given (protocol §2.1). Used for inbound webhooks (b24jssdk's B24Hook accepts
 * only https) and for checking a token before a portal is stored. The caller has already
 * checked that `base` is the portal's allowed address.
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
  let res: Response;
  try {
    res = await fetchFn(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
      redirect: 'manual',
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (e) {
    const timeout = (e as Error).name === 'TimeoutError';
    throw bitrixApiError(
      {
        bitrixCode: timeout ? 'REQUEST_TIMEOUT' : 'NETWORK_ERROR',
        httpStatus: 0,
        method,
        description: timeout ? 'no answer in time' : 'the portal could not be reached',
      },
      e,
    );
  }
  const raw = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      json = parsed as Record<string, unknown>;
    }
  } catch {
    json = undefined;
  }
  if (res.status >= 300 || !json || json.error !== undefined) {
    const code = typeof json?.error === 'string' ? json.error : '';
    const description =
      typeof json?.error_description === 'string'
        ? json.error_description.slice(0, 300)
        : res.status >= 300 && res.status < 400
          ? 'redirected (portal renamed?)'
          : '';
    throw bitrixApiError({
      bitrixCode: code || (json ? 'ERROR' : 'ERROR_UNEXPECTED_ANSWER'),
      httpStatus: res.status,
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
