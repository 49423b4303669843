import { Router, type Response } from 'express';
import type { Deps } from '../../deps.js';
import {
  defaultPolicy,
  effectivePolicy,
  parseDays,
  portalRetention,
  savePortalRetention,
  withinCeiling,
} from '../../retention/policy.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';

const shown = (n: number | undefined) => (n === undefined ? '' : String(n));

/**
 * The portal's own retention (db/README.md#retention): days for events, failed events; empty =
 * default.
 */
export function retentionPage(deps: Deps): Router {
  const router = Router();

  const render = async (
    res: Response,
    extra: { saved?: boolean; invalid?: boolean; form?: { days: string; failedDays: string } } = {},
  ) => {
    const { user } = uiContext(res);
    const own = await portalRetention(deps.db, user.memberId);
    res.render('ui/retention', {
      nav: 'retention',
      defaults: defaultPolicy(deps.config),
      effective: await effectivePolicy(deps.db, deps.config, user.memberId),
      form: extra.form ?? { days: shown(own.days), failedDays: shown(own.failedDays) },
      saved: extra.saved ?? false,
      invalid: extra.invalid ?? false,
    });
  };

  router.get('/ui/retention', async (_req, res) => render(res));

  router.post('/ui/retention', requireAdmin, csrfProtection, async (req, res) => {
    const { user } = uiContext(res);
    const body = req.body as Record<string, unknown>;
    const days = parseDays(body.days);
    const failedDays = parseDays(body.failedDays);
    const server = defaultPolicy(deps.config);
    const fits = (d: { days?: number }, ceiling: number) =>
      d.days === undefined || withinCeiling(d.days, ceiling);
    if (
      !days.ok ||
      !failedDays.ok ||
      !fits(days, server.days) ||
      !fits(failedDays, server.failedDays)
    ) {
      res.status(400);
      const form = { days: String(body.days ?? ''), failedDays: String(body.failedDays ?? '') };
      await render(res, { invalid: true, form });
      return;
    }
    await savePortalRetention(
      deps.db,
      user.memberId,
      { days: days.days, failedDays: failedDays.days },
      deps.clock.now(),
    );
    await render(res, { saved: true });
  });

  return router;
}
