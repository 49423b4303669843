import { frameRequest, type UiHarness } from '../../helpers/ui-harness.js';

/** A session opened the way Bitrix24 opens the frame: the cookie and the `?s=` token. */
export interface UiSession {
  location: string;
  cookie: string;
  token: string;
  setCookie: string;
}

export const base = (h: UiHarness) => h.appUrl.replace('localhost', '127.0.0.1');

export async function openSession(
  h: UiHarness,
  opts: Parameters<typeof frameRequest>[1] = {},
): Promise<UiSession> {
  const { url, init } = frameRequest(h, opts);
  const res = await fetch(url, init);
  if (res.status !== 303) throw new Error(`entry answered ${res.status}: ${await res.text()}`);
  const location = res.headers.get('location') ?? '';
  const setCookie = res.headers.get('set-cookie') ?? '';
  return {
    location,
    setCookie,
    cookie: setCookie.split(';')[0] ?? '',
    token: new URL(location, h.appUrl).searchParams.get('s') ?? '',
  };
}

export async function getPage(
  h: UiHarness,
  path: string,
  cookie?: string,
): Promise<{ status: number; html: string; headers: Headers }> {
  const res = await fetch(`${base(h)}${path}`, {
    headers: cookie ? { cookie } : {},
    redirect: 'manual',
  });
  return { status: res.status, html: await res.text(), headers: res.headers };
}

export async function postForm(
  h: UiHarness,
  path: string,
  fields: Record<string, string | string[]>,
  cookie?: string,
): Promise<{ status: number; html: string; headers: Headers }> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) {
    for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
  }
  const res = await fetch(`${base(h)}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(cookie ? { cookie } : {}),
    },
    body: body.toString(),
    redirect: 'manual',
  });
  return { status: res.status, html: await res.text(), headers: res.headers };
}

export const csrfOf = (html: string): string =>
  /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

/** One row of a page's table, by the event id it shows (its cells' HTML). */
export const rowOf = (html: string, id: number): string =>
  new RegExp(`<tr data-id="${id}"[^>]*>([\\s\\S]*?)</tr>`).exec(html)?.[1] ?? '';
