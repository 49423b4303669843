import { Router, type Response } from 'express';
import type { Deps } from '../../deps.js';
import {
  capped,
  defaultPolicy,
  effectivePolicy,
  keepsLess,
  MAX_RETENTION_DAYS,
  parseDays,
  portalRetention,
  savePortalRetention,
  withinCeiling,
  type RetentionPolicy,
} from '../../retention/policy.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';

const shown = (n: number | undefined) => (n === undefined ? '' : String(n));

/** Why a field was refused: not a whole number of days, or more than the server's `max`. */
type FieldProblem = { kind: 'notWhole' } | { kind: 'tooLong'; max: number };

/**
 * The portal's own retention (db/README.md#retention): days for events, failed events; empty =
 * default.
 */
export function retentionPage(deps: Deps): Router {
  const router = Router();

  const render = async (
    res: Response,
    extra: {
      saved?: boolean;
      invalid?: boolean;
      form?: { days: string; failedDays: string };
      problems?: { days: FieldProblem | null; failedDays: FieldProblem | null };
      /** Shorter figures asked to be confirmed: what is kept now, and what would be. */
      confirm?: { before: RetentionPolicy; after: RetentionPolicy };
    } = {},
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
      problems: extra.problems ?? { days: null, failedDays: null },
      confirm: extra.confirm ?? null,
    });
  };

  router.get('/ui/retention', async (_req, res) => render(res));

  router.post('/ui/retention', requireAdmin, csrfProtection, async (req, res) => {
    const { user } = uiContext(res);
    const body = req.body as Record<string, unknown>;
    const days = parseDays(body.days);
    const failedDays = parseDays(body.failedDays);
    const server = defaultPolicy(deps.config);
    // What is wrong with each field, said next to it: not a number of days, or more than
    // the server keeps (0, for ever, included).
    const problem = (
      raw: unknown,
      d: ReturnType<typeof parseDays>,
      ceiling: number,
    ): FieldProblem | null => {
      const max = ceiling || MAX_RETENTION_DAYS;
      if (!d.ok) {
        // A number past every limit (99999) is too long, not "no whole number".
        return /^\s*\d+\s*$/.test(String(raw)) ? { kind: 'tooLong', max } : { kind: 'notWhole' };
      }
      return d.days === undefined || withinCeiling(d.days, ceiling)
        ? null
        : { kind: 'tooLong', max };
    };
    const problems = {
      days: problem(body.days, days, server.days),
      failedDays: problem(body.failedDays, failedDays, server.failedDays),
    };
    if (problems.days || problems.failedDays || !days.ok || !failedDays.ok) {
      res.status(400);
      const form = { days: String(body.days ?? ''), failedDays: String(body.failedDays ?? '') };
      await render(res, { invalid: true, form, problems });
      return;
    }
    // Keeping less deletes events for good at the next pass: asked once more, with the new
    // figures, before it is saved.
    const before = await effectivePolicy(deps.db, deps.config, user.memberId);
    const after = {
      days: capped(days.days, server.days),
      failedDays: capped(failedDays.days, server.failedDays),
    };
    const shorter =
      keepsLess(after.days, before.days) || keepsLess(after.failedDays, before.failedDays);
    if (shorter && body.confirm !== '1') {
      const form = { days: String(body.days ?? ''), failedDays: String(body.failedDays ?? '') };
      await render(res, { form, confirm: { before, after } });
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
