import path from 'node:path';
import { formText } from '../lib/body-buffer.js';
import express, { Router, type Request, type Response } from 'express';
import type { Deps } from '../deps.js';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import { formBodyOnly, frameHeaders, requireUiSession } from './context.js';
import { EntryRefusedError, verifyFrameEntry } from './frame-entry.js';
import { ENTRY_RETRY_FIELD, openForRetry, postedByOwnPage, sealForRetry } from './entry-retry.js';
import { adminProof } from './admin-check.js';
import { uiLang } from './i18n.js';
import { translateMessage } from './i18n-messages.js';
import type { Sweeper } from '../recovery/sweep.js';
import { dashboardPage } from './pages/dashboard-page.js';
import { logPages } from './pages/log-pages.js';
import { replayPage } from './pages/replay-page.js';
import { retentionPage } from './pages/retention-page.js';
import { rulesPage } from './pages/rules-page.js';
import { ruleBuilderPage } from './pages/rule-builder-page.js';
import { createMetadataCache } from '../rules/metadata.js';
import { settingsPages } from './pages/settings-pages.js';
import { signedSessionId, startSession, TOKEN_PARAM, uiSession } from './session.js';

/** How long a frame entry that could not be checked now waits before it is opened again. */
const ENTRY_RETRY_SECONDS = 5;

export interface UiRouteOptions {
  /** Wakes the worker after jobs were queued (test alerts). */
  notifyWorker?: () => void;
  /**
   * The server's sweeper (services.recovery): a sweep an admin starts from the dashboard
   * wakes the worker for what it stores and is cancelled at shutdown like any other.
   */
  sweeper?: Sweeper;
}

/**
 * The pages inside Bitrix24 (server/README.md, "Inside Bitrix24"). `handlers.app` and every placement handler take the
 * POST from Bitrix24, verify it (frame-entry.ts) and start a session, then redirect into the
 * pages under /ui, which need that session; state-changing requests also need its CSRF token.
 */
export function uiRoutes(deps: Deps, opts: UiRouteOptions = {}): Router {
  const router = Router();
  const session = uiSession(deps);
  const form = formText({ type: 'application/x-www-form-urlencoded', limit: 64 * 1024 });

  const placementCode = new Map<string, string>(
    deps.manifest.placements.map((p) => [p.handler, p.code.toUpperCase()]),
  );
  const entryPaths = [deps.manifest.handlers.app, ...placementCode.keys()];

  const entry = async (req: Request, res: Response) => {
    const posted = typeof req.body === 'string' ? req.body : '';
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
    const lang = uiLang(typeof req.query.LANG === 'string' ? req.query.LANG : undefined);
    // The retry page of an entry that could not be checked (entry-retry.ts) posts back the
    // entry sealed, from our own origin.
    const retryRef = new URLSearchParams(posted).get(ENTRY_RETRY_FIELD);
    const retried = retryRef !== null;
    let raw = posted;
    if (retried) {
      const kept = postedByOwnPage(req.headers, deps.config.appUrl)
        ? openForRetry(deps.box, retryRef, req.path, query, deps.clock.now().getTime())
        : undefined;
      if (kept === undefined) {
        // Expired, altered, or posted by another site: Bitrix24 opens the frame again
        // where it lets the page ask (the app's main page); elsewhere the user reopens it.
        // The page holds no data and no action, so it may show under the portal the query
        // names (a plain host only).
        frameHeaders(res);
        const named = typeof req.query.DOMAIN === 'string' ? req.query.DOMAIN.trim() : '';
        if (/^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/.test(named)) {
          res.set('Content-Security-Policy', `frame-ancestors https://${named} http://${named}`);
        }
        res.status(503).set('Retry-After', String(ENTRY_RETRY_SECONDS));
        res.render('ui/entry-retry', {
          lang,
          message: translateMessage('The portal is not answering. Please try again shortly.', lang),
          seconds: ENTRY_RETRY_SECONDS,
          retryRef: undefined,
          retryAction: undefined,
          appName: deps.manifest.name,
          jsSdkUrl: deps.config.b24.jsSdkUrl,
        });
        return;
      }
      raw = kept;
    }
    let verified;
    try {
      verified = await verifyFrameEntry(
        deps,
        req.query as Record<string, unknown>,
        raw,
        req.headers,
        retried,
      );
    } catch (e) {
      if (!(e instanceof EntryRefusedError)) throw e;
      // Frame the refusal only for the portal the member_id is bound to, and only when the
      // request named that portal: a refusal before the DOMAIN check (a malformed AUTH_ID, a
      // wrong APPLICATION_TOKEN) would otherwise tell a stranger who knows a member_id the
      // portal's address.
      const memberId = new URLSearchParams(raw).get('member_id');
      const known = memberId ? await findPortalByMemberId(deps.db, memberId) : undefined;
      const named = typeof req.query.DOMAIN === 'string' ? req.query.DOMAIN : '';
      const ours = known && named.trim().toLowerCase() === known.domain.toLowerCase();
      frameHeaders(res, e.status !== 403 && ours ? known : undefined);
      // In the language Bitrix24 names (LANG), as the pages are: a refusal shows in the
      // frame or the deal tab where the user's pages would have been.
      const message = translateMessage(e.message, lang);
      if (e.status === 503) {
        // The check could not run now (the portal's REST budget is busy or it does not
        // answer): a page that sends the entry again shortly, not a dead end. It posts back
        // the entry sealed with the token key (Bitrix24 denies BX24.reloadWindow in
        // placements); BX24.reloadWindow only when the entry is too large to carry.
        const now = deps.clock.now().getTime();
        const ref = sealForRetry(deps.box, { path: req.path, query, raw }, now);
        res.status(503).set('Retry-After', String(ENTRY_RETRY_SECONDS));
        res.render('ui/entry-retry', {
          lang,
          message,
          seconds: ENTRY_RETRY_SECONDS,
          retryRef: ref,
          retryAction: query ? `${req.path}?${query}` : req.path,
          appName: deps.manifest.name,
          jsSdkUrl: deps.config.b24.jsSdkUrl,
        });
        return;
      }
      res.status(e.status).type('text/plain').send(`${message}\n`);
      return;
    }
    await startSession(
      req,
      verified.user,
      adminProof(deps, verified.authId, verified.refreshId, verified.checkedAt),
    );
    frameHeaders(res, verified.portal);
    const code = placementCode.get(req.path) ?? 'DEFAULT';
    const dealId = String(verified.placementOptions.ID ?? '');
    const target =
      code === 'CRM_DEAL_DETAIL_TAB' && /^\d{1,20}$/.test(dealId) ? `/ui/deal/${dealId}` : '/ui';
    const token = signedSessionId(req.sessionID, deps.config.sessionSecret);
    deps.logger.info(
      { memberId: verified.user.memberId, userId: verified.user.userId, placement: code },
      'frame session started',
    );
    res.redirect(303, `${target}?${TOKEN_PARAM}=${encodeURIComponent(token)}`);
  };

  for (const p of entryPaths) {
    router.post(p, form, ...session, entry);
    router.get(p, (_req, res) => {
      frameHeaders(res);
      res.status(405).type('text/plain').send('Open this application from Bitrix24.\n');
    });
  }

  const chartJs = path.join(deps.root, 'node_modules', 'chart.js', 'dist', 'chart.umd.js');
  router.get('/assets/vendor/chart.umd.js', (_req, res) => {
    res.sendFile(chartJs, { maxAge: '1d' });
  });

  // The body is read only for a session: a stranger's POST is refused on its head, before
  // up to 1 MB of it is taken into memory.
  router.use(
    '/ui',
    ...session,
    requireUiSession(deps),
    express.urlencoded({ extended: false, limit: '1mb' }),
    formBodyOnly,
  );
  router.use(dashboardPage(deps, opts.sweeper));
  // One metadata cache for the stage names of the log's notes and the map page, and the
  // builder's pickers.
  const metadata = createMetadataCache(deps.bitrix, { now: () => deps.clock.now().getTime() });
  router.use(logPages(deps, metadata));
  router.use(replayPage(deps, opts.notifyWorker));
  router.use(rulesPage(deps, metadata));
  router.use(ruleBuilderPage(deps, metadata));
  router.use(settingsPages(deps, opts.notifyWorker ?? (() => {})));
  router.use(retentionPage(deps));
  return router;
}
