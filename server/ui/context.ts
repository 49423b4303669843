import type { NextFunction, Request, RequestHandler, Response } from 'express';
import ejs from 'ejs';
import { csrfSync } from 'csrf-sync';
import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { portalOrigin } from './frame-entry.js';
import { currentRights } from './admin-check.js';
import { translator } from './i18n.js';
import { translateError, translateMessage } from './i18n-messages.js';
import { TOKEN_PARAM, type UiUser } from './session.js';
import { formatTime, formatTimeHtml, wallClock } from './time.js';
import { eventMeaning } from './supported-events.js';

/** What every page handler knows after `requireUiSession`. */
export interface UiContext {
  user: UiUser;
  portal: PortalRow;
}

export function uiContext(res: Response): UiContext {
  return res.locals.ui as UiContext;
}

/**
 * Headers of every page: only the portal may frame it (no X-Frame-Options, which would
 * block Bitrix24 itself), nothing is cached, and no Referer leaves (links may carry `?s=`).
 */
export function frameHeaders(
  res: Response,
  portal?: Pick<PortalRow, 'domain' | 'client_endpoint'>,
) {
  const ancestors = portal ? `'self' ${portalOrigin(portal)}` : "'none'";
  res.set('Content-Security-Policy', `frame-ancestors ${ancestors}`);
  res.set('Cache-Control', 'no-store');
  res.set('Referrer-Policy', 'no-referrer');
  res.set('X-Content-Type-Options', 'nosniff');
}

/** A URL inside the app that keeps the session token when the cookie does not arrive. */
export type UrlBuilder = (
  path: string,
  params?: Record<string, string | number | undefined>,
) => string;

function urlBuilder(carry: string | undefined): UrlBuilder {
  return (path, params = {}) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== '') q.set(k, String(v));
    }
    if (carry) q.set(TOKEN_PARAM, carry);
    const qs = q.toString();
    return qs ? `${path}${path.includes('?') ? '&' : '?'}${qs}` : path;
  };
}

const csrf = csrfSync({
  getTokenFromRequest: (req) => {
    const body = req.body as Record<string, unknown> | undefined;
    const v = body?._csrf ?? req.headers['x-csrf-token'];
    return typeof v === 'string' ? v : undefined;
  },
  errorConfig: { statusCode: 403, message: 'The form has expired. Reopen the application.' },
});

/** Refuses state-changing requests without the session's synchronizer token. */
export const csrfProtection: RequestHandler = csrf.csrfSynchronisedProtection;

/**
 * The gate of every page after the entry POST: a live session whose portal is still
 * installed. Sets the frame headers and what the views need (translator, URL builder, CSRF
 * token, role).
 */
export function requireUiSession(deps: Deps): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const session = req.session?.b24;
    const portal = session ? await deps.portals.get(session.memberId) : undefined;
    if (!session || !portal || portal.id !== session.portalId || portal.status === 'uninstalled') {
      frameHeaders(res);
      if (session) req.session.b24 = undefined;
      // No session, so no Bitrix24 language: the browser's preference decides.
      const lang = req.acceptsLanguages('en', 'ru') === 'ru' ? 'ru' : 'en';
      res
        .status(401)
        .type('text/plain')
        .send(`${translateMessage('Open this application from Bitrix24.', lang)}\n`);
      return;
    }
    frameHeaders(res, portal);
    // An admin's rights are confirmed with the portal again every few minutes.
    const user = await currentRights(deps, req, portal);
    res.locals.ui = { user, portal } satisfies UiContext;
    res.locals.user = user;
    res.locals.lang = user.lang;
    res.locals.t = translator(user.lang);
    res.locals.u = urlBuilder(res.locals.carryToken as string | undefined);
    res.locals.csrfToken = csrf.generateToken(req);
    res.locals.jsSdkUrl = deps.config.b24.jsSdkUrl;
    res.locals.portalDomain = portal.domain;
    res.locals.appName = deps.manifest.name;
    const zone = user.timeZone ?? 'UTC';
    res.locals.timeZone = zone;
    res.locals.fmtTime = (ms: number | null | undefined) => formatTime(ms, zone);
    res.locals.timeHtml = (ms: number | null | undefined) => formatTimeHtml(ms, zone);
    res.locals.wallTime = (ms: number) => wallClock(ms, zone);
    res.locals.tm = (message: string) => translateMessage(message, user.lang);
    res.locals.te = (error: string) => translateError(error, user.lang);
    res.locals.fmtMs = (ms: number) => fmtMs(ms, user.lang);
    res.locals.clip = clip;
    res.locals.eventCode = eventCode;
    res.locals.eventMeaning = (name: string) => eventMeaning(name, user.lang);
    res.locals.dataBreaks = dataBreaks;
    res.locals.nav = '';
    res.locals.compact = false;
    next();
  };
}

/**
 * An event name as HTML (escaped as `<%= %>` escapes) that a narrow cell wraps between its
 * words, not inside one: `ONCRM<wbr>DEAL<wbr>UPDATE`. The cell may still break anywhere as a
 * last resort.
 */
export function eventCode(name: string): string {
  return ejs
    .escapeXML(name)
    .replace(/^(ONCRM|ON)(?=[A-Z]{3})/, '$1<wbr>')
    .replace(/(?<=[A-Z])(ADD|UPDATE|DELETE)(_\d+)?$/, '<wbr>$1$2');
}

/**
 * A rule's data value as HTML (escaped as `<%= %>` escapes) that a narrow cell wraps after its
 * separators, not inside a word: `UF_CRM_<wbr>1712…`, `crm.<wbr>timeline.<wbr>comment.<wbr>add`,
 * `sales@<wbr>example.<wbr>com`; not inside a number (`127.0.0.1`, `1.5`). None is added after `&`
 * or `;`, which escaping puts in entities.
 */
export function dataBreaks(text: string): string {
  return ejs
    .escapeXML(text)
    .replace(/([_/@=?])(?=[^_./@=?])/g, '$1<wbr>')
    .replace(/\.(?=[A-Za-z])/g, '.<wbr>');
}

/**
 * A long text cut for a table cell: whole characters (an emoji is never split into half a
 * surrogate pair, which shows as "�"), and "…" where it was cut, so a reader knows there is
 * more on the event's page.
 */
export function clip(text: string | null | undefined, max: number): string {
  if (!text) return '';
  if (text.length <= max) return text;
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/**
 * The pages post forms only. Express 5 leaves `req.body` undefined when no parser took the
 * request, so a POST in another content type (the CSRF token may come in a header) would
 * reach the handlers without a form: one with a body in another type is refused (415), one
 * without a body gets an empty form.
 */
export const formBodyOnly: RequestHandler = (req, _res, next) => {
  if (req.body !== undefined || req.method === 'GET' || req.method === 'HEAD') {
    next();
    return;
  }
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
    throw new AppError(
      'UNSUPPORTED_MEDIA_TYPE',
      'Send the form as application/x-www-form-urlencoded.',
      { status: 415 },
    );
  }
  req.body = {};
  next();
};

/** Why a reader's request was refused, in words that say what to do (i18n-messages.ts). */
export const NOT_ADMIN =
  'Bitrix24 does not confirm that you are an administrator of this portal (the rights were withdrawn, or your authorization in Bitrix24 has ended), and only administrators can do this. Reopen the application from Bitrix24: if you are an administrator there, you can do it again.';
/** Said to a user who never was an administrator (a manager opening an admin page by its URL). */
export const ONLY_ADMINS = "Only the portal's administrators can open this page or do this.";
export const NOT_CONFIRMED_NOW =
  'Bitrix24 could not confirm your administrator rights just now. Send it again in a moment.';

/**
 * Settings, rules, alerts and replays are for portal administrators only. An admin whose
 * rights the portal withdrew (admin-check.ts) meets this on a form they had open: the answer
 * says what happened and what to do, and a page's form POST gets a page that gives back
 * every field they sent (as typed, for them to copy: nothing stored is read), so nothing
 * typed is lost. The session still an admin's means the portal could not be asked just now.
 */
export const requireAdmin: RequestHandler = (req, res, next) => {
  if (uiContext(res).user.isAdmin) {
    next();
    return;
  }
  // An admin whose rights could not be confirmed just now; one whose rights the portal
  // withdrew; a user who never had them (the first words read as "something broke" to a
  // manager who followed a link: a walk).
  const b24 = req.session.b24;
  const message = b24?.isAdmin ? NOT_CONFIRMED_NOW : b24?.demoted ? NOT_ADMIN : ONLY_ADMINS;
  if (req.method !== 'POST' || req.accepts(['html', 'json']) !== 'html') {
    throw new AppError('FORBIDDEN', message, { status: 403 });
  }
  // Only the session's own forms are given back: a stranger's page posting into the frame
  // (no CSRF token) gets the words, not its text shown on our page.
  const body = (csrf.isRequestValid(req) ? (req.body ?? {}) : {}) as Record<string, unknown>;
  const fields = Object.entries(body)
    .filter(([name]) => name !== '_csrf' && name !== TOKEN_PARAM)
    .flatMap(([name, v]) => (Array.isArray(v) ? v.map((x) => [name, x]) : [[name, v]]))
    .filter((f): f is [string, string] => typeof f[1] === 'string' && f[1].trim() !== '');
  res.status(403).render('ui/not-saved', { message, fields });
};

const UNITS = {
  en: { ms: 'ms', s: 's', min: 'min', h: 'h' },
  ru: { ms: 'мс', s: 'с', min: 'мин', h: 'ч' },
} as const;

/**
 * A duration in the page's language: `250 ms`, `1.5 s`, `3 min`, `2.0 h`; in Russian with a
 * decimal comma (`1,5 с`), as Russian writes numbers.
 */
export function fmtMs(ms: number, lang: UiUser['lang'] = 'en'): string {
  const u = UNITS[lang];
  const tenths = (x: number) => (lang === 'ru' ? x.toFixed(1).replace('.', ',') : x.toFixed(1));
  if (ms < 1000) return `${ms} ${u.ms}`;
  if (ms < 60_000) return `${tenths(ms / 1000)} ${u.s}`;
  if (ms < 3600_000) return `${Math.round(ms / 60_000)} ${u.min}`;
  return `${tenths(ms / 3600_000)} ${u.h}`;
}
