import { Router, type Response } from 'express';
import type { Deps } from '../../deps.js';
import { refusedRecipient } from '../../actions/email.js';
import { alertDestinations } from '../../alerts/send.js';
import { slaByPeriod, type SlaFigure, type SlaPeriod } from '../../alerts/sla.js';
import {
  firingAlertStates,
  type AlertKind,
  type AlertStateRow,
} from '../../../db/stores/alerts.js';
import { eventSeries, eventSeriesBetween } from '../../../db/stores/dashboard.js';
import { effectiveMapWithSource } from '../../rules/map-store.js';
import { currentRuleSuccess } from '../../rules/rule-names.js';
import { statusFigures } from '../../../db/stores/events.js';
import { destinationJson, openDestinations } from '../../../db/stores/destinations.js';
import { destinationName } from '../../lib/destination-name.js';
import { lastGap, recoveredCounts, type GapRow } from '../../../db/stores/recovery.js';
import { createSweeper, SweepRefusedError, type Sweeper } from '../../recovery/sweep.js';
import { toError } from '../../lib/errors.js';
import { oldestEventAt } from '../../../db/stores/retention.js';
import { effectivePolicy } from '../../retention/policy.js';
import { intakeRefusals } from '../../intake/refusals.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';
import { offsetMinutes, zonedToUtc } from '../time.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** JSON for a `<script type="application/json">` block: nothing in it can close the tag. */
export const scriptJson = (v: unknown) =>
  JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');

/** Within-SLA count, decided count and share of one rule (or all) over one period. */
export interface SlaCell {
  withinSla: number;
  total: number;
  /** 0..1; null with no decided event. */
  share: number | null;
}

/** One row of the dashboard's SLA table. */
export interface SlaRow {
  rule: string;
  slaSeconds: number | null;
  periods: Record<SlaPeriod, SlaCell>;
}

const EMPTY: SlaCell = { withinSla: 0, total: 0, share: null };
const cell = (withinSla: number, total: number): SlaCell => ({
  withinSla,
  total,
  share: total ? Math.round((withinSla / total) * 10_000) / 10_000 : null,
});

/** `slaByPeriod` as one row per rule plus a row summing every rule. */
export function slaTable(figures: Array<SlaFigure & { period: SlaPeriod }>): {
  rows: SlaRow[];
  total: SlaRow['periods'];
} {
  const byRule = new Map<string, SlaRow>();
  const sums = { '24h': { ...EMPTY }, '7d': { ...EMPTY } };
  for (const f of figures) {
    const row = byRule.get(f.rule) ?? {
      rule: f.rule,
      slaSeconds: f.slaSeconds,
      periods: { '24h': EMPTY, '7d': EMPTY },
    };
    row.periods[f.period] = cell(f.withinSla, f.total);
    byRule.set(f.rule, row);
    sums[f.period].withinSla += f.withinSla;
    sums[f.period].total += f.total;
  }
  return {
    rows: [...byRule.values()],
    total: {
      '24h': cell(sums['24h'].withinSla, sums['24h'].total),
      '7d': cell(sums['7d'].withinSla, sums['7d'].total),
    },
  };
}

/** A firing alert condition as the dashboard lists it. */
export interface FiringAlert {
  key: string;
  kind: AlertKind;
  firedAt: number | null;
  /** The figures behind it, language-neutral (numbers, rule and event names). */
  summary: string;
}

function alertSummary(row: AlertStateRow): string {
  let d: Record<string, unknown> = {};
  try {
    d = (JSON.parse(row.details ?? 'null') as Record<string, unknown> | null) ?? {};
  } catch {
    return '';
  }
  switch (row.kind) {
    case 'backlog':
      return `${Number(d.backlog)} > ${Number(d.threshold)}`;
    case 'sla': {
      const byRule = Array.isArray(d.byRule) ? (d.byRule as Array<Record<string, unknown>>) : [];
      return byRule.map((r) => `${String(r.rule)}: ${Number(r.events)}`).join(', ');
    }
    case 'drift':
      return Array.isArray(d.missing) ? d.missing.map(String).join(', ') : '';
    case 'reauth':
      return typeof d.status === 'string' ? d.status : '';
    case 'failed':
      return typeof d.failed === 'number' ? String(d.failed) : '';
    case 'destination': {
      // A portal's own destinations are one alert with their list; the operator's, one each.
      const list = Array.isArray(d.list) ? (d.list as Array<Record<string, unknown>>) : [d];
      return list
        .map((x) => `${destinationName(String(x.destination))}: ${Number(x.waitingJobs)}`)
        .join(', ');
    }
  }
}

/** The portal's alert conditions that are firing now. */
export async function firingAlerts(db: Deps['db'], memberId: string): Promise<FiringAlert[]> {
  return (await firingAlertStates(db, { memberId })).map((a) => ({
    key: a.key,
    kind: a.kind,
    firedAt: a.fired_at,
    summary: alertSummary(a),
  }));
}

/** What the dashboard shows of loss recovery for one portal. */
export interface RecoveryView {
  offline: number;
  sweep: number;
  /**
   * The newest sweep that covered this portal, with this portal's part only: how many other
   * portals it swept would tell how many are installed.
   */
  gap?: {
    startedAt: number;
    endedAt: number;
    trigger: GapRow['trigger'];
    status: GapRow['status'];
    /** This portal's part: entities checked and reconcile events queued. */
    listed: number;
    enqueued: number;
    portalStatus?: string;
    error?: string;
  };
}

export async function recoveryView(db: Deps['db'], portalId: number, memberId: string) {
  const [counts, gap] = await Promise.all([recoveredCounts(db, portalId), lastGap(db, memberId)]);
  const view: RecoveryView = { ...counts };
  if (gap) {
    const mine = gap.portals.find((p) => p.memberId === memberId);
    view.gap = {
      startedAt: gap.started_at,
      endedAt: gap.ended_at,
      trigger: gap.trigger,
      status: gap.status,
      listed: mine?.listed ?? 0,
      enqueued: mine?.enqueued ?? 0,
      ...(mine ? { portalStatus: mine.status } : {}),
      ...(mine?.error ? { error: mine.error } : {}),
    };
  }
  return view;
}

/**
 * Storage line of the dashboard: the portal's oldest kept event and its retention. The
 * database's size is not shown: the database holds every portal's events, and its size
 * told each portal how much the others receive (the operator has it from `prune --dry-run`).
 */
async function storageView(deps: Deps, portalId: number, memberId: string) {
  const [oldestAt, policy, refused] = await Promise.all([
    oldestEventAt(deps.db, portalId),
    effectivePolicy(deps.db, deps.config, memberId),
    intakeRefusals(deps.db, memberId, deps.clock.now().getTime()),
  ]);
  return { oldestAt, policy, refused };
}

/** Hours an admin may sweep back from the dashboard. */
export const SWEEP_HOURS = [1, 6, 24, 72, 168] as const;

/**
 * The instants at which the user's last `days` days start (local midnight in `zone`, today's
 * last), and the next midnight: the 7-day chart's edges. A day with a daylight-saving change
 * is 23 or 25 hours long, as the user lived it.
 */
export function localDayEdges(now: number, zone: string, days: number): number[] {
  const localToday = Math.floor((now + offsetMinutes(zone, now) * 60_000) / DAY) * DAY;
  return Array.from({ length: days + 1 }, (_, k) => {
    const midnight = localToday + (k - days + 1) * DAY;
    const t = zonedToUtc(midnight, zone);
    // Where the clocks jump at midnight (00:00 → 01:00), the day starts at the jump's end.
    const wall = t + offsetMinutes(zone, t) * 60_000;
    return wall < midnight ? t + (midnight - wall) : t;
  });
}

/**
 * Dashboard: figures, throughput charts, per-rule success, SLA share per rule for 24 h and
 * 7 days, the portal's firing alerts, and loss recovery (recovered events, the last gap and
 * a sweep on an admin's request).
 */
export function dashboardPage(deps: Deps, sweeper: Sweeper = createSweeper(deps)): Router {
  const router = Router();

  const render = async (
    res: Response,
    extra: { sweepStarted?: boolean; sweepError?: string } = {},
  ) => {
    const { portal, user } = uiContext(res);
    const now = deps.clock.now();
    const [figures, day, week, rules, sla, alerts, recovery, storage, destinations, alertTo] =
      await Promise.all([
        statusFigures(deps.db, now, portal.id),
        eventSeries(deps.db, portal.id, now.getTime(), 24),
        eventSeriesBetween(
          deps.db,
          portal.id,
          localDayEdges(now.getTime(), user.timeZone ?? 'UTC', 7),
        ),
        effectiveMapWithSource(deps.db, portal.member_id).then(({ map }) =>
          currentRuleSuccess(
            deps.db,
            portal,
            map.rules.map((r) => r.name),
            now.getTime() - 7 * DAY,
            now.getTime(),
          ),
        ),
        slaByPeriod(deps, portal.member_id),
        firingAlerts(deps.db, portal.member_id),
        recoveryView(deps.db, portal.id, portal.member_id),
        storageView(deps, portal.id, portal.member_id),
        openDestinations(deps.db, portal.id),
        alertDestinations(deps, portal.member_id),
      ]);
    res.render('ui/dashboard', {
      nav: 'dashboard',
      figures,
      rules,
      sla: slaTable(sla),
      alerts,
      // Neither a channel of its own nor one of the server: its alerts are sent nowhere, and
      // "No alert is firing" read as all well while failed events piled up (a walk).
      // An address of the portal's own that the server now refuses (one inside its network,
      // saved before that was checked) counts as none: its alerts fail for good.
      alertsGoNowhere:
        !alertTo.telegram &&
        (!alertTo.email ||
          (alertTo.email !== deps.config.email.to &&
            refusedRecipient(alertTo.email, deps.config.actions.privateHosts) !== undefined)),
      recovery,
      storage,
      destinations: destinations.map((d) => {
        const json = destinationJson(d);
        return { ...json, name: destinationName(json.destination) };
      }),
      sweepHours: SWEEP_HOURS,
      sweepStarted: extra.sweepStarted ?? false,
      sweepError: extra.sweepError ?? '',
      chartJson: scriptJson({ day, week }),
    });
  };

  router.get('/ui', async (_req, res) => render(res));

  /** An admin's sweep of this portal, back as many hours as chosen; runs in the background. */
  router.post('/ui/recovery/sweep', requireAdmin, csrfProtection, async (req, res) => {
    const { portal, user } = uiContext(res);
    const hours = Number((req.body as Record<string, unknown>).hours);
    if (!(SWEEP_HOURS as readonly number[]).includes(hours)) {
      res.status(400);
      await render(res, { sweepError: `hours: one of ${SWEEP_HOURS.join(', ')}` });
      return;
    }
    const now = deps.clock.now().getTime();
    try {
      const { done } = await sweeper.begin({
        since: now - hours * HOUR,
        until: now,
        memberId: portal.member_id,
        trigger: 'ui',
        requestedBy: `ui:user ${user.userId}`,
      });
      done.catch((e: unknown) =>
        deps.logger.warn({ err: toError(e).message }, 'dashboard sweep failed'),
      );
    } catch (e) {
      if (!(e instanceof SweepRefusedError)) throw e;
      res.status(409);
      await render(res, { sweepError: e.message });
      return;
    }
    await render(res, { sweepStarted: true });
  });

  return router;
}
