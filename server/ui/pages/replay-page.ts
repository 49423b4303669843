import { Router, type Response } from 'express';
import type { Deps } from '../../deps.js';
import { AppError } from '../../lib/errors.js';
import { eventTypo } from '../../config/bitrix-events.js';
import { replayEvents } from '../../processing/replay.js';
import { chosenEvents } from '../../install/bindings.js';
import {
  createReplayRun,
  getReplayRun,
  replayProgress,
  type ReplayRunRow,
} from '../../../db/stores/replay-runs.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';
import { filterParams, readFilterForm, toLogFilter, type FilterForm } from '../filters.js';

const REPLAY_STATUSES = ['processed', 'failed', 'skipped'] as const;

/**
 * The preview counts at most this many events (in bounded steps, db/stores/replay.ts) and
 * shows "more than" past it: a long range never keeps the request counting for long.
 */
/**
 * Why a replay's range cannot run: none given, or one that ends before it starts (said, as the
 * log and the CLI say it, not counted as "0 events would be replayed").
 */
const rangeProblem = (f: { from?: number; to?: number }) =>
  f.from !== undefined && f.to !== undefined ? 'log.fromAfterTo' : 'replay.rangeNeeded';

export const REPLAY_PREVIEW_CAP = 10_000;

/** How often the progress page asks again while events are waiting. */
export const REPLAY_POLL_MS = 2000;

/**
 * Replay: date range + event type + status → preview count → confirm → progress →
 * result. Re-running steps that already succeeded is its own checkbox, off unless ticked, and
 * shown again on the confirm page. A confirmed replay is recorded with the ids it queued
 * (`replay_runs`), so its progress page counts exactly those events.
 */
export function replayPage(deps: Deps, notifyWorker: () => void = () => {}): Router {
  const router = Router();
  const render = async (res: Response, view: string, extra: Record<string, unknown>) => {
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
  /** The portal's own run, or 404 (never another portal's). */
  const runOf = async (res: Response, param: unknown): Promise<ReplayRunRow> => {
    const id = Number(param);
    const run = Number.isSafeInteger(id) && id > 0 ? await getReplayRun(deps.db, id) : undefined;
    if (!run || run.portal_id !== uiContext(res).portal.id)
      throw new AppError('NOT_FOUND', 'Not found', { status: 404 });
    return run;
  };

  router.get('/ui/replay', requireAdmin, async (req, res) => {
    // "Change the filter" comes back with the filter and the rerun tick as they were.
    const { form, rerun } = parse(req.query as Record<string, unknown>);
    await render(res, 'ui/replay', { form, rerun });
  });

  router.post('/ui/replay/preview', requireAdmin, csrfProtection, async (req, res) => {
    const { portal, user } = uiContext(res);
    const { form, rerun } = parse(req.body as Record<string, unknown>);
    const filter = toLogFilter(form, portal.id, user.timeZone);
    if (filter.from === undefined || filter.to === undefined || filter.from >= filter.to) {
      await render(res.status(400), 'ui/replay', { form, rerun, error: rangeProblem(filter) });
      return;
    }
    // An event typed but not read would be left out: every event of the range, replayed.
    if (form.event && filter.event === undefined) {
      await render(res.status(400), 'ui/replay', { form, rerun, error: 'log.badEvent' });
      return;
    }
    // The count is of the events received until now; the confirmed run replays those, not
    // what arrived in between (a range ending today keeps growing).
    const asOf = deps.clock.now().getTime();
    const { matched, capped } = await replayEvents(deps, {
      filter: { ...filter, to: Math.min(filter.to, asOf + 1) },
      dryRun: true,
      cap: REPLAY_PREVIEW_CAP,
    });
    // None, for an event name that is a typo of one Bitrix24 sends: say which.
    const event = String(form.event ?? '')
      .trim()
      .toUpperCase();
    const typo = matched === 0 && event ? eventTypo(event) : undefined;
    await render(res, 'ui/replay-confirm', {
      form,
      rerun,
      matched,
      capped: capped === true,
      asOf,
      typo: typo && typo !== event ? typo : '',
    });
  });

  router.post('/ui/replay/run', requireAdmin, csrfProtection, async (req, res) => {
    const { portal, user } = uiContext(res);
    const { form, rerun } = parse(req.body as Record<string, unknown>);
    const filter = toLogFilter(form, portal.id, user.timeZone);
    if (filter.from === undefined || filter.to === undefined || filter.from >= filter.to) {
      await render(res.status(400), 'ui/replay', { form, rerun, error: rangeProblem(filter) });
      return;
    }
    // An event typed but not read would be left out: every event of the range, replayed.
    if (form.event && filter.event === undefined) {
      await render(res.status(400), 'ui/replay', { form, rerun, error: 'log.badEvent' });
      return;
    }
    // The instant the preview counted at (a form without one: now).
    const now = deps.clock.now().getTime();
    const asOf = Number((req.body as Record<string, unknown>).asOf);
    const until = Number.isSafeInteger(asOf) && asOf > 0 && asOf <= now ? asOf : now;
    const range = { ...filter, to: Math.min(filter.to, until + 1) };
    // A replay from here takes at most REPLAY_PREVIEW_CAP events: its progress page counts
    // them every 2 s, on the thread every portal's deliveries are parsed on.
    const count = await replayEvents(deps, {
      filter: range,
      dryRun: true,
      cap: REPLAY_PREVIEW_CAP,
    });
    if (count.capped) {
      await render(res.status(400), 'ui/replay', { form, rerun, error: 'replay.tooMany' });
      return;
    }
    const result = await replayEvents(deps, {
      filter: range,
      rerunSucceeded: rerun,
      cap: REPLAY_PREVIEW_CAP,
    });
    const runId = await createReplayRun(
      deps.db,
      {
        portal_id: portal.id,
        user_id: user.userId,
        filter: filterParams(form),
        rerun_succeeded: rerun,
        matched: result.matched,
        created_at: deps.clock.now().getTime(),
      },
      result.eventIds,
    );
    notifyWorker();
    deps.logger.info(
      { memberId: user.memberId, userId: user.userId, runId, queued: result.queued, rerun },
      'replay started from the UI',
    );
    // Post/redirect/get: reloading the progress page never queues the events again.
    res.redirect(303, res.locals.u(`/ui/replay/${runId}`));
  });

  router.get('/ui/replay/:id', requireAdmin, async (req, res) => {
    const run = await runOf(res, req.params.id);
    const progress = await replayProgress(deps.db, run);
    const form: FilterForm = { ...readFilterForm(run.filter), entity: '', q: '' };
    await render(res, 'ui/replay-result', {
      run,
      form,
      rerun: run.rerun_succeeded,
      progress,
      pollMs: REPLAY_POLL_MS,
      logParams: filterParams({ ...form, status: '' }),
      failedParams: filterParams({ ...form, status: 'failed' }),
    });
  });

  router.get('/ui/replay/:id/progress', requireAdmin, async (req, res) => {
    const run = await runOf(res, req.params.id);
    res.json({ id: run.id, matched: run.matched, ...(await replayProgress(deps.db, run)) });
  });

  return router;
}
