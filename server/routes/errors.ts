import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { AppError } from '../lib/errors.js';
import type { Deps } from '../deps.js';
import { translateMessage } from '../ui/i18n-messages.js';

/**
 * An error as text, or, on a page of the app inside Bitrix24 (the session set its helpers),
 * as a page with the app's menu: the frame has no back button, and a bare line left the user
 * nowhere to go but reopening the app.
 */
function sendError(res: Response, status: number, message: string): void {
  if (typeof res.locals.t === 'function' && res.locals.ui) {
    res.status(status).render('ui/error', { nav: '', status, message }, (err, html) => {
      if (err) res.status(status).type('text/plain').send(`${message}\n`);
      else res.type('html').send(html);
    });
    return;
  }
  res.status(status).type('text/plain').send(`${message}\n`);
}

/** 404 for anything no route answered. */
export const notFound: RequestHandler = (req, res) => {
  if (req.accepts(['html', 'json']) === 'json') res.status(404).json({ error: 'not found' });
  else sendError(res, 404, translateMessage('Not found', res.locals.lang === 'ru' ? 'ru' : 'en'));
};

/**
 * The one place where errors become HTTP responses. Client errors show their message; server
 * errors show a bland text and are logged with their stack (never the request body).
 */
export function errorHandler(deps: Deps): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const e = err as Partial<AppError> & { type?: string; statusCode?: number };
    let status = typeof e.status === 'number' ? e.status : (e.statusCode ?? 500);
    if (status < 400 || status > 599) status = 500;
    const expose = err instanceof AppError ? err.expose : status < 500;
    const message = expose && typeof e.message === 'string' ? e.message : 'Internal error';
    if (status >= 500) deps.logger.error({ err, path: req.path }, 'request failed');
    else deps.logger.info({ status, code: e.code, path: req.path }, message);
    if (res.headersSent) return;
    // A page of the app (a session knows the language) answers in the user's language.
    const lang = res.locals.lang === 'ru' ? 'ru' : 'en';
    if (req.accepts(['html', 'json']) === 'json')
      res.status(status).json({ error: translateMessage(message, lang), code: e.code });
    else sendError(res, status, translateMessage(message, lang));
  };
}
