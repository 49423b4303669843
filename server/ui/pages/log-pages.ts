import { Router } from 'express';
import type { Deps } from '../../deps.js';
import { AppError } from '../../lib/errors.js';
import { replayEvents } from '../../processing/replay.js';
import { chosenEvents } from '../../install/bindings.js';
import {
  actionRunsByEvent,
  logPage,
  nextAttemptByEvent,
  succeededStepsByEvent,
} from '../../../db/stores/event-log.js';
import { BACKLOG_STATUSES, EVENT_STATUSES, getEvent } from '../../../db/stores/events.js';
import { erasedAt } from '../../../db/stores/erasure.js';
import { eventIdsOwnedBy } from '../../../db/stores/event-owners.js';
import { listActionRuns, listRuleMatches } from '../../../db/stores/processing.js';
import { effectiveMap } from '../../rules/map-store.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';
import { crmCardUrl, sliderPath } from '../crm-links.js';
import {
  ENTITY_TYPES,
  filterParams,
  filterProblems,
  OUTCOMES,
  readLogForm,
  toLogPageFilter,
} from '../filters.js';
import { maskForView } from '../mask-view.js';
import { translateError } from '../i18n-messages.js';
import { exportLogCsv } from './log-export.js';
import { eventDetail, heldNotes, matchBadge, noteStagesLookup, stepWhere } from './log-view.js';
import type { MetadataCache } from '../../rules/metadata.js';
import { mapWords } from '../i18n-map.js';
import { readableNote } from '../note-names.js';

export const LOG_PAGE_SIZE = 50;
/** Events the deal tab lists, newest first; older ones are in the log. */
export const DEAL_TAB_SIZE = 100;
/** Most events one "retry selected" may queue (a page holds 50). */
const RETRY_MAX = 200;
/**
 * Longest a page waits for the portal's stage names (noteStages): the event page as long as
 * the map page; the log and the deal tab, read often, less.
 */
const EVENT_STAGES_WAIT_MS = 1500;
const LIST_STAGES_WAIT_MS = 500;
/** Statuses whose text is the app's own note (eventDetail): only these name stages. */
const NOTE_STATUSES = ['processed', 'skipped'];

const idParam = (v: unknown): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new AppError('NOT_FOUND', 'Not found', { status: 404 });
  return n;
};

/**
 * Event log, event detail (+ retry now) and the deal tab. `metadata` names deal stages in
 * notes (the routes' one cache, shared with the map page and the builder).
 */
export function logPages(deps: Deps, metadata?: MetadataCache): Router {
  const router = Router();
  const noteStages = noteStagesLookup(metadata, () => deps.clock.now().getTime());

  router.get('/ui/events', async (req, res) => {
    const { portal, user } = uiContext(res);
    const form = readLogForm(req.query as Record<string, unknown>);
    const before = Number(req.query.before);
    const after = Number(req.query.after);
    const beforeId = Number.isSafeInteger(before) && before > 0 ? before : undefined;
    const filter = {
      ...toLogPageFilter(form, portal.id, user.timeZone),
      beforeId,
      afterId:
        beforeId === undefined && Number.isSafeInteger(after) && after >= 0 ? after : undefined,
    };
    const [page, map, eventNames] = await Promise.all([
      logPage(deps.db, filter, LOG_PAGE_SIZE),
      effectiveMap(deps.db, user.memberId),
      chosenEvents(deps, user.memberId),
    ]);
    const retried = Number(req.query.retried);
    const [held, stages, steps] = await Promise.all([
      heldNotes(deps.db, page.rows, user.lang),
      noteStages(
        portal,
        page.rows.filter((r) => NOTE_STATUSES.includes(r.status)).map((r) => r.last_error),
        LIST_STAGES_WAIT_MS,
      ),
      succeededStepsByEvent(
        deps.db,
        page.rows.filter((r) => r.status === 'processed').map((r) => Number(r.id)),
      ),
    ]);
    const words = mapWords(user.lang);
    res.render('ui/events', {
      nav: 'events',
      form,
      filterProblems: filterProblems(form, filter),
      params: filterParams(form),
      rows: page.rows.map((r) => ({
        ...r,
        detail: eventDetail(
          r.status,
          r.last_error || r.reject_reason,
          user,
          map.rules.map((x) => x.name),
          { words, stages, entityType: r.entity_type, event: r.event },
        ),
        // Shown only as `detail`: masked, a note told from an error.
        last_error: undefined,
        reject_reason: undefined,
        held: held.get(r.id),
        stepsDone: steps.get(Number(r.id)) ?? 0,
        cardUrl: crmCardUrl(portal, r.entity_type, r.entity_id),
        cardPath: sliderPath(r.entity_type, r.entity_id),
      })),
      nextBeforeId: page.nextBeforeId,
      newerAfterId: page.newerAfterId,
      paged: filter.beforeId !== undefined || filter.afterId !== undefined,
      statuses: EVENT_STATUSES,
      outcomes: Object.keys(OUTCOMES),
      entityTypes: ENTITY_TYPES,
      ruleNames: map.rules.map((r) => r.name),
      eventNames,
      retried: Number.isSafeInteger(retried) && retried >= 0 ? retried : undefined,
      retryRefused: typeof req.query.retryRefused === 'string',
      retryMax: RETRY_MAX,
    });
  });

  router.get('/ui/events.csv', async (req, res) => {
    const { portal, user } = uiContext(res);
    const form = readLogForm(req.query as Record<string, unknown>);
    await exportLogCsv(deps, res, toLogPageFilter(form, portal.id, user.timeZone));
  });

  /** Retry the rows an admin ticked; events of another portal are never touched. */
  router.post('/ui/events/retry', requireAdmin, csrfProtection, async (req, res) => {
    const { portal } = uiContext(res);
    const body = req.body as Record<string, unknown>;
    const raw = Array.isArray(body.ids) ? body.ids : body.ids === undefined ? [] : [body.ids];
    const ids = [...new Set(raw.map(Number))].filter((n) => Number.isSafeInteger(n) && n > 0);
    const back = readLogForm(body);
    if (ids.length === 0 || ids.length > RETRY_MAX) {
      // Back to the same log page, its filters kept, saying what to do (a bare error page
      // inside the frame had no way back).
      res.redirect(
        303,
        res.locals.u('/ui/events', { ...filterParams(back), retryRefused: String(ids.length) }),
      );
      return;
    }
    const r = await replayEvents(deps, { filter: { portalId: portal.id, ids } });
    res.redirect(303, res.locals.u('/ui/events', { ...filterParams(back), retried: r.queued }));
  });

  router.get('/ui/events/:id', async (req, res) => {
    const { portal, user } = uiContext(res);
    const ev = await getEvent(deps.db, idParam(req.params.id));
    if (!ev || ev.portal_id !== portal.id)
      throw new AppError('NOT_FOUND', 'Not found', { status: 404 });
    const [runs, matches, jobs, map, held] = await Promise.all([
      listActionRuns(deps.db, ev.id),
      listRuleMatches(deps.db, ev.id),
      deps
        .db('jobs')
        .where('event_id', ev.id)
        .orderBy('id')
        .select('id', 'status', 'attempts', 'last_error', 'run_at', 'created_at', 'updated_at'),
      effectiveMap(deps.db, user.memberId),
      heldNotes(deps.db, [ev], user.lang),
    ]);
    const stages = await noteStages(
      portal,
      [
        NOTE_STATUSES.includes(ev.status) ? ev.last_error : null,
        ...matches.flatMap((m) => [m.reason, m.note]),
      ],
      EVENT_STAGES_WAIT_MS,
    );
    const names = {
      words: mapWords(user.lang),
      stages,
      entityType: ev.entity_type,
      event: ev.event,
    };
    const where = stepWhere(map, names.words, deps.box);
    res.render('ui/event', {
      nav: 'events',
      ev: { ...ev, auth_enc: undefined },
      cardUrl: crmCardUrl(portal, ev.entity_type, ev.entity_id),
      body: maskForView(ev.body),
      detail: eventDetail(
        ev.status,
        ev.last_error,
        user,
        [...map.rules.map((r) => r.name), ...matches.map((m) => m.rule_name)],
        names,
      ),
      held: held.get(ev.id),
      runs: runs.map((r) => ({
        ...r,
        where: where(r),
        request: maskForView(r.request_summary),
        response: maskForView(r.response_summary),
        error: translateError(maskForView(r.error), user.lang),
        output: undefined,
      })),
      // Why each rule ran or not, in the page's words (note-names.ts).
      matches: matches.map((m) => ({
        ...m,
        badge: matchBadge(m, runs, ev.status, (rule, step) =>
          Boolean(map.rules.find((r) => r.name === rule)?.actions[step]?.continueOnError),
        ),
        reason: readableNote(m.reason ?? '', user.lang, [], names, 'reason'),
        note: readableNote(m.note ?? '', user.lang, [], names, 'matchNote'),
      })),
      jobs: (jobs as Array<Record<string, unknown>>).map((j) => ({
        ...j,
        last_error: translateError(maskForView(j.last_error as string | null), user.lang),
        run_at: Number(j.run_at),
        created_at: Number(j.created_at),
        updated_at: Number(j.updated_at),
      })),
      retryable: ['processed', 'failed', 'skipped'].includes(ev.status),
      notice: retryNotice(req.query, ev),
    });
  });

  router.post('/ui/events/:id/retry', requireAdmin, csrfProtection, async (req, res) => {
    const { portal } = uiContext(res);
    const id = idParam(req.params.id);
    const ev = await getEvent(deps.db, id);
    if (!ev || ev.portal_id !== portal.id)
      throw new AppError('NOT_FOUND', 'Not found', { status: 404 });
    const r = await replayEvents(deps, { filter: { portalId: portal.id, ids: [id] } });
    res.redirect(
      303,
      res.locals.u(`/ui/events/${id}`, {
        retried: r.queued > 0 ? '1' : '0',
        at: String(deps.clock.now().getTime()),
      }),
    );
  });

  router.get('/ui/deal/:id', async (req, res) => {
    const { portal, user } = uiContext(res);
    const dealId = String(req.params.id);
    if (!/^\d{1,20}$/.test(dealId)) throw new AppError('NOT_FOUND', 'Not found', { status: 404 });
    // The deal's own events and those of records made in it (a call, a task: their owner is
    // learned when they are read), newest first; each list by its index, then merged.
    const columns = [
      'id',
      'event',
      'status',
      'attempts',
      'received_at',
      'processed_at',
      'last_error',
      'entity_type',
      'entity_id',
    ];
    const owned = await eventIdsOwnedBy(
      deps.db,
      portal.id,
      { type: 'deal', id: dealId },
      DEAL_TAB_SIZE + 1,
    );
    const [own, linked] = (await Promise.all([
      deps
        .db('events')
        .where({ portal_id: portal.id, entity_type: 'deal', entity_id: dealId })
        .orderBy('id', 'desc')
        .limit(DEAL_TAB_SIZE + 1)
        .select(columns),
      owned.length
        ? deps.db('events').where('portal_id', portal.id).whereIn('id', owned).select(columns)
        : [],
    ])) as Array<Array<Record<string, unknown>>>;
    const rows = [...own!, ...linked!]
      .sort((a, b) => Number(b.id) - Number(a.id))
      .slice(0, DEAL_TAB_SIZE + 1);
    // One more than shown: whether the tab says that older events are in the log.
    const more = rows.length > DEAL_TAB_SIZE;
    if (more) rows.length = DEAL_TAB_SIZE;
    const map = await effectiveMap(deps.db, user.memberId);
    const ruleNames = map.rules.map((r) => r.name);
    const noted = rows.filter((r) => NOTE_STATUSES.includes(String(r.status)));
    const names = {
      words: mapWords(user.lang),
      stages: await noteStages(
        portal,
        noted.map((r) => r.last_error as string | null),
        LIST_STAGES_WAIT_MS,
      ),
      entityType: 'deal',
    };
    const events = rows.map((r) => ({
      ...r,
      id: Number(r.id),
      status: String(r.status),
      received_at: Number(r.received_at),
      processed_at: r.processed_at === null ? null : Number(r.processed_at),
      // Shown only as `detail`: masked, a note told from an error.
      last_error: undefined,
      // An event no rule was for: kept in the list, in grey, so what ran stands out (a walk's
      // manager read a column of grey "skipped · no rule matched" rows as faults).
      quiet: r.status === 'skipped' && r.last_error === 'no rule matched',
      detail: eventDetail(String(r.status), r.last_error as string | null, user, ruleNames, {
        ...names,
        entityType: String(r.entity_type ?? 'deal'),
      }),
    }));
    const where = stepWhere(map, names.words, deps.box);
    const runs = new Map(
      [
        ...(await actionRunsByEvent(
          deps.db,
          events.map((e) => e.id),
        )),
      ].map(([id, list]) => [id, list.map((r) => ({ ...r, where: where(r) }))]),
    );
    // Events waiting for a retry after an error: when the next attempt is.
    const retrying = rows.filter(
      (r) => r.last_error && ['received', 'processing'].includes(String(r.status)),
    );
    const [nextAttempt, held] = await Promise.all([
      nextAttemptByEvent(
        deps.db,
        retrying.map((r) => Number(r.id)),
      ),
      // Events waiting for an earlier event of this deal: which one, and why it is not done.
      heldNotes(deps.db, events, user.lang),
    ]);
    // A retry whose time has passed waits for a worker: "due now", not a time in the past.
    const now = deps.clock.now().getTime();
    // No events: erased on request (erase --entity) is said as such, not as "none yet".
    const erased =
      events.length === 0 ? await erasedAt(deps.db, portal.id, { type: 'deal', id: dealId }) : null;
    res.render('ui/deal', {
      nav: '',
      compact: true,
      dealId,
      erased,
      events,
      runs,
      more,
      nextAttempt,
      held,
      now,
    });
  });

  return router;
}

/**
 * What the event page says after "Retry now": queued again while the event waits or runs;
 * once it has finished since (the link stays in the address bar, and a reload came back to
 * "queued again" under a failed retry: a walk), that the retry has run.
 */
function retryNotice(
  query: Record<string, unknown>,
  ev: { status: string; processed_at: number | string | null },
): string {
  if (query.retried === '0') return 'notRetryable';
  if (query.retried !== '1') return '';
  const at = Number(query.at);
  const finished = !(BACKLOG_STATUSES as readonly string[]).includes(ev.status);
  // Finished before the retry was taken up: still queued.
  return finished && Number.isFinite(at) && Number(ev.processed_at) >= at
    ? 'retriedFinished'
    : 'retried';
}
