import { formText } from '../lib/body-buffer.js';
import { Router, type Response } from 'express';
import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import { parseInstallRequest, type InstallRequest } from '../install/install-request.js';
import { installPortal } from '../install/install-portal.js';
import { translator, uiLang } from '../ui/i18n.js';
import { translateMessage } from '../ui/i18n-messages.js';

/**
 * Only the portal may frame the installer page
 * (https://apidocs.bitrix24.com/local-integrations/site-does-not-allow-connection.html).
 */
function frameHeaders(res: Response, domain: string | undefined): void {
  const portal =
    domain && /^[a-z0-9.:-]+$/i.test(domain) ? ` https://${domain} http://${domain}` : '';
  res.set('Content-Security-Policy', `frame-ancestors 'self'${portal}`);
  res.set('Cache-Control', 'no-store');
}

/**
 * `handlers.install`: what Bitrix24 POSTs when an admin installs the app, either into the
 * installer frame (answered with a page that calls `BX24.installFinish()`) or, for a
 * "script only" app, as an ONAPPINSTALL-style form (answered with JSON).
 */
export function installRoutes(deps: Deps): Router {
  const router = Router();
  const path = deps.manifest.handlers.install;
  const form = formText({
    type: 'application/x-www-form-urlencoded',
    limit: deps.config.bodyLimit,
  });

  router.post(path, form, async (req, res) => {
    const raw = typeof req.body === 'string' ? req.body : '';
    const wantsPage = !/(^|&)event=/i.test(raw);
    // The installer page speaks the installing admin's language (query LANG:
    // https://apidocs.bitrix24.com/settings/oauth/simple-way.html).
    const lang = uiLang(typeof req.query.LANG === 'string' ? req.query.LANG : undefined);
    const words = {
      lang,
      t: translator(lang),
      tm: (m: string) => translateMessage(m, lang),
    };
    let request: InstallRequest | undefined;
    try {
      request = parseInstallRequest(req.query as Record<string, unknown>, raw);
      const outcome = await installPortal(deps, request);
      if (request.kind === 'event') {
        res.json({ ok: true, events: outcome.sync.events, placements: outcome.sync.placements });
        return;
      }
      frameHeaders(res, request.domain);
      res.render('install', {
        ...words,
        ok: true,
        jsSdkUrl: deps.config.b24.jsSdkUrl,
        appName: deps.manifest.name,
        domain: outcome.portal.domain,
        events: outcome.sync.events,
        placements: outcome.sync.placements,
        failed: outcome.sync.failed,
        message: '',
      });
    } catch (e) {
      const known = e instanceof AppError && e.expose;
      const status = known ? (e as AppError).status : 502;
      const message = known
        ? (e as AppError).message
        : 'The installation could not be completed. Please try again in a minute.';
      if (!known) deps.logger.error({ err: e, path }, 'install failed');
      if (!wantsPage) {
        res.status(status).json({ error: message });
        return;
      }
      frameHeaders(res, request?.domain);
      res.status(status).render('install', {
        ...words,
        ok: false,
        jsSdkUrl: deps.config.b24.jsSdkUrl,
        appName: deps.manifest.name,
        domain: request?.domain ?? '',
        events: [],
        placements: [],
        failed: [],
        message,
      });
    }
  });

  router.get(path, (_req, res) => {
    res.status(405).type('text/plain').send('Install the application from Bitrix24.\n');
  });
  return router;
}
