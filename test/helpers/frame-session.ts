import type { EmulatedPortal } from '../emulator/bitrix-emulator.js';

/** A UI session opened the way Bitrix24 opens the app frame, on any running app. */
export interface FrameSession {
  /** `b24hooks.sid=…`, for the Cookie header. */
  cookie: string;
  /** The signed session id the app puts in `?s=`. */
  token: string;
  /** The session's CSRF token, read from a page form. */
  csrf: string;
  /** Where the entry redirected (`/ui?s=…`). */
  location: string;
}

/**
 * The query and form Bitrix24 POSTs into `path`
 * (https://apidocs.bitrix24.com/settings/oauth/simple-way.html) for one user of `portal`.
 */
export function frameEntry(
  appUrl: string,
  portal: EmulatedPortal,
  opts: {
    userId?: number;
    path?: string;
    domain?: string;
    memberId?: string;
    authId?: string;
    placement?: string;
    placementOptions?: Record<string, unknown>;
  } = {},
): { url: string; body: string } {
  const auth = portal.issueUserAuth(opts.userId ?? 1);
  const q = new URLSearchParams({
    DOMAIN: opts.domain ?? portal.domain,
    PROTOCOL: '0',
    LANG: 'en',
    APP_SID: 'a1b2c3d4e5f6',
  });
  const body = new URLSearchParams({
    AUTH_ID: opts.authId ?? auth.accessToken,
    AUTH_EXPIRES: '3600',
    REFRESH_ID: auth.refreshToken,
    SERVER_ENDPOINT: auth.serverEndpoint,
    member_id: opts.memberId ?? portal.memberId,
    status: 'L',
    PLACEMENT: opts.placement ?? 'DEFAULT',
    PLACEMENT_OPTIONS: JSON.stringify(opts.placementOptions ?? {}),
    APPLICATION_TOKEN: portal.applicationToken,
    APPLICATION_SCOPE: 'crm,placement,user_brief',
  });
  return { url: `${appUrl}${opts.path ?? '/app'}?${q}`, body: body.toString() };
}

/**
 * Opens a session for `userId` through the app's entry POST, then reads its CSRF token from
 * the alert settings page (a form every user sees). `onBody` gets every answer's text.
 */
export async function openFrameSession(
  appUrl: string,
  portal: EmulatedPortal,
  userId = 1,
  onBody: (text: string) => void = () => {},
): Promise<FrameSession> {
  const { url, body } = frameEntry(appUrl, portal, { userId });
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
    redirect: 'manual',
  });
  const text = await res.text();
  onBody(text);
  if (res.status !== 303) throw new Error(`frame entry answered ${res.status}: ${text}`);
  const location = res.headers.get('location') ?? '';
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const token = new URL(location, appUrl).searchParams.get('s') ?? '';
  const page = await fetch(`${appUrl}/ui/alerts`, { headers: { cookie } });
  const html = await page.text();
  onBody(html);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
  if (!csrf) throw new Error(`no CSRF token on /ui/alerts (status ${page.status})`);
  return { cookie, token, csrf, location };
}
