import type { Deps } from '../deps.js';
import { listPortals, type PortalRow } from '../../db/stores/portals.js';
import { effectiveMap } from '../../db/stores/rules.js';
import {
  findNewSlaBreaches,
  lateTotals,
  recordSlaBreaches,
  slaCounts,
  type SlaBreachRow,
  type SlaRule,
} from '../../db/stores/sla.js';

/** SLA figures of one rule over a period. */
export interface SlaFigure {
  rule: string;
  /** The rule's slaSeconds; null when portals give the same rule name different SLAs. */
  slaSeconds: number | null;
  /** Decided events: finished, or still pending past the deadline. */
  total: number;
  /** Processed with the rule done within slaSeconds of receipt. */
  withinSla: number;
  /** withinSla / total, 0..1 (4 decimals); null with no decided event yet. */
  share: number | null;
}

export const SLA_PERIODS = { '24h': 24 * 3600_000, '7d': 7 * 24 * 3600_000 } as const;
export type SlaPeriod = keyof typeof SLA_PERIODS;

/** The enabled rules with an SLA that apply to a portal (its own map, else the default). */
export async function slaRules(db: Deps['db'], memberId: string): Promise<SlaRule[]> {
  const map = await effectiveMap(db, memberId);
  return map.rules
    .filter((r) => r.enabled !== false && typeof r.slaSeconds === 'number' && r.slaSeconds > 0)
    .map((r) => ({ name: r.name, on: r.on, slaSeconds: r.slaSeconds as number }));
}

/**
 * SLA share per rule for events received since `sinceMs` (receipt to the rule's last step
 * done, judged against the rule's `slaSeconds`), for one portal or all of them. For the
 * dashboard and `b24hooks status`.
 */
export async function slaSummary(
  deps: Pick<Deps, 'db' | 'clock'>,
  memberId: string | undefined,
  sinceMs: number,
): Promise<SlaFigure[]> {
  const now = deps.clock.now().getTime();
  const portals = (await listPortals(deps.db)).filter(
    (p) => memberId === undefined || p.member_id === memberId,
  );
  const byRule = new Map<string, SlaFigure>();
  for (const p of portals) {
    for (const rule of await slaRules(deps.db, p.member_id)) {
      const c = await slaCounts(deps.db, p.id, rule, sinceMs, now);
      const f = byRule.get(rule.name) ?? {
        rule: rule.name,
        slaSeconds: rule.slaSeconds,
        total: 0,
        withinSla: 0,
        share: null,
      };
      if (f.slaSeconds !== rule.slaSeconds) f.slaSeconds = null;
      f.total += c.total;
      f.withinSla += c.withinSla;
      byRule.set(rule.name, f);
    }
  }
  return [...byRule.values()].map((f) => ({
    ...f,
    share: f.total ? Math.round((f.withinSla / f.total) * 10_000) / 10_000 : null,
  }));
}

/** `slaSummary` over the last 24 hours and 7 days, one entry per rule and period. */
export async function slaByPeriod(
  deps: Pick<Deps, 'db' | 'clock'>,
  memberId?: string,
): Promise<Array<SlaFigure & { period: SlaPeriod }>> {
  const now = deps.clock.now().getTime();
  const out: Array<SlaFigure & { period: SlaPeriod }> = [];
  for (const [period, ms] of Object.entries(SLA_PERIODS) as Array<[SlaPeriod, number]>) {
    for (const f of await slaSummary(deps, memberId, now - ms)) {
      const { rule, ...figures } = f;
      out.push({ rule, period, ...figures });
    }
  }
  return out;
}

/**
 * Finds events of a portal past a rule's SLA (while still pending, or finished late within
 * `lateLookbackMs`), records each once, and counts it in `b24hooks_sla_breaches_total`.
 */
export async function detectSlaBreaches(
  deps: Pick<Deps, 'db' | 'clock' | 'metrics' | 'logger'>,
  portal: PortalRow,
  lateLookbackMs = 24 * 3600_000,
  lateSeen?: Map<string, number>,
): Promise<SlaBreachRow[]> {
  const now = deps.clock.now().getTime();
  const found: SlaBreachRow[] = [];
  // Events finished late are looked for only when the rollups counted a new one since the
  // last look (`lateSeen`, kept by the monitor): that search reads the period's events.
  const late = lateSeen ? await lateTotals(deps.db, portal.id) : undefined;
  for (const rule of await slaRules(deps.db, portal.member_id)) {
    const key = `${portal.id}:${rule.name}`;
    const total = late?.get(rule.name) ?? 0;
    const lookLate = !lateSeen || lateSeen.get(key) !== total;
    found.push(
      ...(await findNewSlaBreaches(
        deps.db,
        { id: portal.id, memberId: portal.member_id },
        rule,
        now,
        now - lateLookbackMs,
        lookLate,
      )),
    );
    lateSeen?.set(key, total);
  }
  const fresh = await recordSlaBreaches(deps.db, found);
  for (const b of fresh) {
    deps.metrics.slaBreaches.inc({ portal: portal.member_id, rule: b.rule_name });
  }
  if (fresh.length) {
    deps.logger.warn(
      { memberId: portal.member_id, breaches: fresh.length },
      'events passed their SLA',
    );
  }
  return fresh;
}
