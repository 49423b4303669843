import { createHmac } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import session from 'express-session';
import type { Deps } from '../deps.js';
import { safeEqual } from '../lib/crypto.js';
import { KnexSessionStore } from '../../db/stores/sessions.js';

/** Who is looking at the pages: set once the Bitrix24 POST into the frame is verified. */
export interface UiUser {
  portalId: number;
  memberId: string;
  userId: number;
  isAdmin: boolean;
  lang: 'en' | 'ru';
  /**
   * The user's time zone from Bitrix24 (`profile` TIME_ZONE), else the portal's offset from
   * `server.time` (`+03:00`); absent in sessions started before it was kept (then UTC).
   */
  timeZone?: string;
  /**
   * The user's name from Bitrix24 (`profile` NAME and LAST_NAME), shown in the page header;
   * absent or empty for an unnamed user or a session started before it was kept ("user 7").
   */
  name?: string;
  /** Set when the portal withdrew the rights the session started with (admin-check.ts). */
  demoted?: true;
}

/**
 * What a session keeps to ask the portal again about the user's rights: the frame's AUTH_ID and REFRESH_ID,
 * each encrypted with the token key (they are the user's own tokens, never shown or logged, see admin-check.ts),
 * and when the portal last confirmed the rights. The pair rotates at every refresh.
 */
export interface AdminProof {
  token: string;
  /** Absent in sessions started before the refresh token was kept (then no refresh). */
  refresh?: string;
  checkedAt: number;
  /**
   * Set when the last ask failed for a reason that will not pass by itself (the OAuth server
   * refusing the app, `invalid_client` or `PAYMENT_REQUIRED`, or the app unable to refresh at
   * all): until then the session is a reader without asking, so a broken set-up does not
   * cost a REST call and a refresh on every page view.
   */
  retryAt?: number;
}

declare module 'express-session' {
  interface SessionData {
    b24?: UiUser;
    /** The user's means to re-check the rights with the portal (admin-check.ts). */
    b24Admin?: AdminProof;
  }
}

export const SESSION_COOKIE = 'b24hooks.sid';
/** Query parameter carrying the signed session id when the browser drops our cookie. */
export const TOKEN_PARAM = 's';
export const SESSION_TTL_MS = 2 * 3600_000;
/**
 * Live sessions kept per portal user: each opening of the app or of a deal card's tab starts
 * one, and past this the oldest ends (its page then asks to reopen the app). A manager with
 * 50 deal cards open at once is far off; a loop posting one confirmed AUTH_ID is bounded.
 */
export const SESSIONS_PER_USER = 50;

/** The cookie value express-session expects: `s:<sid>.<HMAC-SHA256 base64, unpadded>`. */
export function signedSessionId(sid: string, secret: string): string {
  const mac = createHmac('sha256', secret).update(sid).digest('base64').replace(/=+$/, '');
  return `s:${sid}.${mac}`;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/**
 * The frame's own session. The frame is cross-site, and a browser that blocks third-party
 * cookies (even partitioned ones) never sends ours back; and where it does, one cookie serves
 * every frame of the portal, so the next frame entry (a deal card opened beside the rule
 * being edited, the app opened in another tab) replaced the session the first frame's
 * pages were in: its next save was refused as an expired form. So every link and form of a
 * page carries the signed session id as `?s=`, always, and a token in the query wins over
 * the cookie (it belongs to this frame). The value is the same signed id as the cookie, so
 * express-session verifies it the same way.
 *
 * Only inside a frame: a top-level page (`Sec-Fetch-Dest: document`) never takes its session
 * from the URL, or a stranger could open the app with a session of their own portal in a
 * victim's tab by sending a link (login CSRF); framed, the pages show only under the
 * session's own portal (frame-ancestors).
 */
function tokenFallback(): RequestHandler {
  return (req, res, next) => {
    const s = req.query[TOKEN_PARAM];
    res.locals.carryToken = undefined;
    const topLevel = req.headers['sec-fetch-dest'] === 'document';
    if (!topLevel && typeof s === 'string' && s.length > 0 && s.length < 512) {
      const fromCookie = cookieValue(req.headers.cookie, SESSION_COOKIE);
      if (fromCookie === undefined || !safeEqual(fromCookie, s)) {
        const others = (req.headers.cookie ?? '')
          .split(';')
          .filter((p) => p.trim() && p.split('=')[0]?.trim() !== SESSION_COOKIE);
        req.headers.cookie = [...others, `${SESSION_COOKIE}=${encodeURIComponent(s)}`].join(';');
      }
      res.locals.carryToken = s;
    }
    next();
  };
}

/**
 * Whether browsers accept a `Secure` cookie from us: APP_URL is https (TLS may end at a
 * proxy the server does not see), or a loopback http URL, which browsers treat as secure.
 */
export function secureCookiesPossible(appUrl: string): boolean {
  try {
    const u = new URL(appUrl);
    return u.protocol === 'https:' || ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

/**
 * The session middleware for the pages: express-session on the `sessions` table with a
 * cookie that works in a cross-site iframe (`SameSite=None; Secure; Partitioned`, CHIPS),
 * plus the `?s=` fallback above.
 */
export function uiSession(deps: Deps): RequestHandler[] {
  const secure = secureCookiesPossible(deps.config.appUrl);
  const store = new KnexSessionStore(deps.db, {
    now: () => deps.clock.now().getTime(),
    // A user's sessions are counted by portal and user: each frame entry starts one.
    ownerOf: (sess) => (sess.b24 ? `${sess.b24.memberId}:${sess.b24.userId}` : undefined),
    maxPerOwner: SESSIONS_PER_USER,
  });
  const sessionMw = session({
    name: SESSION_COOKIE,
    secret: deps.config.sessionSecret,
    store,
    resave: false,
    saveUninitialized: false,
    rolling: true,
    unset: 'destroy',
    cookie: {
      httpOnly: true,
      sameSite: 'none',
      secure,
      partitioned: true,
      path: '/',
      maxAge: SESSION_TTL_MS,
    },
  });
  // express-session only sends a Secure cookie on a request it thinks is secure; the public
  // side is (see secureCookiesPossible), whatever the socket says.
  const markSecure: RequestHandler = (req: Request, _res: Response, next: NextFunction) => {
    if (secure && !req.secure) Object.defineProperty(req, 'secure', { value: true });
    next();
  };
  return [tokenFallback(), markSecure, sessionMw];
}

/** Starts a fresh session for a verified user (never reusing an id: no fixation). */
export async function startSession(
  req: Request,
  user: UiUser,
  admin?: AdminProof,
): Promise<string> {
  await new Promise<void>((resolve, reject) =>
    req.session.regenerate((e: unknown) => (e ? reject(e) : resolve())),
  );
  req.session.b24 = user;
  if (admin) req.session.b24Admin = admin;
  await new Promise<void>((resolve, reject) =>
    req.session.save((e: unknown) => (e ? reject(e) : resolve())),
  );
  return req.sessionID;
}
