import { Router } from 'express';
import type { Deps } from '../../deps.js';
import { slaByPeriod, type SlaFigure, type SlaPeriod } from '../../alerts/sla.js';
import { listAlertStates, type AlertKind, type AlertStateRow } from '../../../db/stores/alerts.js';
import { eventSeries, ruleSuccess } from '../../../db/stores/dashboard.js';
import { statusFigures } from '../../../db/stores/events.js';
import { uiContext } from '../context.js';

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

/** `slaByPeriod` as one row per rule plus a row summing every rule (issue 7). */
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
  }
}

/** The portal's alert conditions that are firing now. */
export async function firingAlerts(db: Deps['db'], memberId: string): Promise<FiringAlert[]> {
  return (await listAlertStates(db))
    .filter((a) => a.state === 'firing' && a.member_id === memberId)
    .map((a) => ({ key: a.key, kind: a.kind, firedAt: a.fired_at, summary: alertSummary(a) }));
}

/**
 * Dashboard: figures, throughput charts, per-rule success, SLA share per rule for 24 h and
 * 7 days, and the portal's firing alerts.
 */
export function dashboardPage(deps: Deps): Router {
  const router = Router();

  router.get('/ui', async (_req, res) => {
    const { portal } = uiContext(res);
    const now = deps.clock.now();
    const [figures, day, week, rules, sla, alerts] = await Promise.all([
      statusFigures(deps.db, now, portal.id),
      eventSeries(deps.db, portal.id, now.getTime(), HOUR, 24),
      eventSeries(deps.db, portal.id, now.getTime(), DAY, 7),
      ruleSuccess(deps.db, portal.id, now.getTime() - 7 * DAY),
      slaByPeriod(deps, portal.member_id),
      firingAlerts(deps.db, portal.member_id),
    ]);
    res.render('ui/dashboard', {
      nav: 'dashboard',
      figures,
      rules,
      sla: slaTable(sla),
      alerts,
      chartJson: scriptJson({ day, week }),
    });
  });

  return router;
}
