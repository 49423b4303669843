import { Router } from 'express';
import type { Deps } from '../../deps.js';
import { replayEvents } from '../../processing/replay.js';
import { chosenEvents } from '../../install/bindings.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';
import { filterParams, readFilterForm, toLogFilter, type FilterForm } from '../filters.js';

const REPLAY_STATUSES = ['processed', 'failed', 'skipped'] as const;

/**
 * Replay: date range + event type + status → preview count → confirm → result. Re-running
 * steps that already succeeded is its own checkbox, off unless ticked, and shown again on
 * the confirm page.
 */
export function replayPage(deps: Deps): Router {
  const router = Router();
  const render = async (
    res: Parameters<Parameters<Router['get']>[1]>[1],
    view: string,
    extra: Record<string, unknown>,
  ) => {
    const { user } = uiContext(res);
    res.render(view, {
      nav: 'replay',
      statuses: REPLAY_STATUSES,
      eventNames: await chosenEvents(deps, user.memberId),
      error: '',
      ...extra,
    });
  };
  const parse = (body: Record<string, unknown>) => {
    const form: FilterForm = { ...readFilterForm(body), entity: '', q: '' };
    if (!(REPLAY_STATUSES as readonly string[]).includes(form.status)) form.status = '';
    return { form, rerun: body.rerunSucceeded === '1' };
  };

  router.get('/ui/replay', requireAdmin, async (req, res) => {
    const { form } = parse(req.query as Record<string, unknown>);
    await render(res, 'ui/replay', { form, rerun: false });
  });

  router.post('/ui/replay/preview', requireAdmin, csrfProtection, async (req, res) => {
    const { portal } = uiContext(res);
    const { form, rerun } = parse(req.body as Record<string, unknown>);
    const filter = toLogFilter(form, portal.id);
    if (filter.from === undefined || filter.to === undefined) {
      await render(res.status(400), 'ui/replay', { form, rerun, error: 'replay.rangeNeeded' });
      return;
    }
    const { matched } = await replayEvents(deps, { filter, dryRun: true });
    await render(res, 'ui/replay-confirm', { form, rerun, matched });
  });

  router.post('/ui/replay/run', requireAdmin, csrfProtection, async (req, res) => {
    const { portal, user } = uiContext(res);
    const { form, rerun } = parse(req.body as Record<string, unknown>);
    const filter = toLogFilter(form, portal.id);
    if (filter.from === undefined || filter.to === undefined) {
      await render(res.status(400), 'ui/replay', { form, rerun, error: 'replay.rangeNeeded' });
      return;
    }
    const result = await replayEvents(deps, { filter, rerunSucceeded: rerun });
    deps.logger.info(
      { memberId: user.memberId, userId: user.userId, queued: result.queued, rerun },
      'replay started from the UI',
    );
    await render(res, 'ui/replay-result', {
      form,
      rerun,
      matched: result.matched,
      queued: result.queued,
      logParams: filterParams({ ...form, status: '' }),
    });
  });

  return router;
}
