import type { Deps } from '../deps.js';
import { findPortalByMemberId, listPortals, type PortalRow } from '../../db/stores/portals.js';
import { effectiveMapOf, RULES_KEY } from '../rules/map-store.js';
import { slaRules, slaRulesOf } from '../rules/sla-rules.js';
import { RULE_NAMES_KEY, type FormerNames } from '../rules/rule-names.js';
import { DEFAULT_SCOPE, listSettings, settingsOfScopes } from '../../db/stores/settings.js';
import { getAlertState, saveAlertState, type AlertStateRow } from '../../db/stores/alerts.js';
import {
  findLateSlaBreachesStep,
  findPendingSlaBreaches,
  lateTotals,
  recordSlaBreaches,
  slaCountsOf,
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
  /** Processed with the rule done within slaSeconds of receipt (a replayed event: first done). */
  withinSla: number;
  /** withinSla / total, 0..1 (4 decimals); null with no decided event yet. */
  share: number | null;
}

export const SLA_PERIODS = { '24h': 24 * 3600_000, '7d': 7 * 24 * 3600_000 } as const;
export type SlaPeriod = keyof typeof SLA_PERIODS;

/** The portals (one, or all of them) with the SLA rules each applies, in portal order. */
async function slaRulesOfPortals(
  db: Deps['db'],
  memberId: string | undefined,
): Promise<Array<{ portal: PortalRow; rules: SlaRule[]; former: FormerNames }>> {
  // One portal (the dashboard, at every view): its own row, not every portal's.
  const one = memberId === undefined ? undefined : await findPortalByMemberId(db, memberId);
  const portals = memberId === undefined ? await listPortals(db) : one ? [one] : [];
  // One portal's map and the default, or every map there is: one query, not two per portal;
  // with the names the portals' rules had before (rule-names.ts), the same way.
  const maps = new Map<string, Map<string, unknown>>();
  const keys = [RULES_KEY, RULE_NAMES_KEY];
  if (memberId !== undefined) {
    for (const [scope, m] of await settingsOfScopes(db, [memberId, DEFAULT_SCOPE], keys))
      maps.set(scope, m);
  } else {
    for (const key of keys) {
      for (const r of await listSettings<unknown>(db, key)) {
        const m = maps.get(r.scope) ?? new Map<string, unknown>();
        m.set(key, r.value);
        maps.set(r.scope, m);
      }
    }
  }
  return portals.map((portal) => ({
    portal,
    rules: slaRulesOf(effectiveMapOf(maps, portal.member_id)),
    former: (maps.get(portal.member_id)?.get(RULE_NAMES_KEY) as FormerNames | undefined) ?? {},
  }));
}

/** The SLA figures per rule of these portals' rules for events received since `sinceMs`. */
async function summarise(
  db: Deps['db'],
  applied: ReadonlyArray<{ portal: PortalRow; rules: readonly SlaRule[]; former?: FormerNames }>,
  sinceMs: number,
  now: number,
): Promise<SlaFigure[]> {
  // A rule renamed keeps its events: they were counted under the names it had (with the
  // same SLA), which no rule of the map has now (a renamed rule's week showed 0/0, and the
  // total with it).
  const pairs = applied.flatMap(({ portal, rules, former = {} }) => {
    const current = new Set(rules.map((r) => r.name));
    return rules.flatMap((rule) =>
      [rule.name, ...(former[rule.name] ?? []).filter((n) => !current.has(n))].map((name) => ({
        portalId: portal.id,
        rule: { ...rule, name },
        as: rule.name,
      })),
    );
  });
  const counts = await slaCountsOf(db, pairs, sinceMs, now);
  const byRule = new Map<string, SlaFigure>();
  for (const [i, { rule, as }] of pairs.entries()) {
    const c = counts[i] ?? { total: 0, withinSla: 0 };
    const f = byRule.get(as) ?? {
      rule: as,
      slaSeconds: rule.slaSeconds,
      total: 0,
      withinSla: 0,
      share: null,
    };
    if (f.slaSeconds !== rule.slaSeconds) f.slaSeconds = null;
    f.total += c.total;
    f.withinSla += c.withinSla;
    byRule.set(as, f);
  }
  return [...byRule.values()].map((f) => ({
    ...f,
    share: f.total ? Math.round((f.withinSla / f.total) * 10_000) / 10_000 : null,
  }));
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
  return summarise(deps.db, await slaRulesOfPortals(deps.db, memberId), sinceMs, now);
}

/** `slaSummary` over the last 24 hours and 7 days, one entry per rule and period. */
export async function slaByPeriod(
  deps: Pick<Deps, 'db' | 'clock'>,
  memberId?: string,
): Promise<Array<SlaFigure & { period: SlaPeriod }>> {
  const now = deps.clock.now().getTime();
  // The portals and their maps once for both periods.
  const applied = await slaRulesOfPortals(deps.db, memberId);
  const out: Array<SlaFigure & { period: SlaPeriod }> = [];
  for (const [period, ms] of Object.entries(SLA_PERIODS) as Array<[SlaPeriod, number]>) {
    for (const f of await summarise(deps.db, applied, now - ms, now)) {
      const { rule, ...figures } = f;
      out.push({ rule, period, ...figures });
    }
  }
  return out;
}

/** Where the search for events finished late got to on one portal. */
export interface LateSearchState {
  /** Events processed up to this time (ms) were searched. */
  cursor: number;
  /** Per rule, the events finished late the rollups counted then (kind `late`). */
  totals: Record<string, number>;
}

/** Per portal id: kept by the alert monitor between its checks. */
export type LateSearchMemory = Map<number, LateSearchState>;

/**
 * A late event's processed_at may be older than the check that first could see it (its
 * transaction commits after its clock was read; another instance's clock runs behind), so
 * a search starts this long before the cursor.
 */
export const LATE_SETTLE_MS = 60_000;

/** The `alert_state` row that keeps a portal's LateSearchState across restarts. */
export const lateStateKey = (memberId: string) => `sla-late:${memberId}`;

const lateStateOf = (row: AlertStateRow | undefined): LateSearchState | undefined =>
  !row || row.cursor === null
    ? undefined
    : { cursor: row.cursor, totals: JSON.parse(row.details ?? '{}') as Record<string, number> };

const lateStateRow = (
  memberId: string,
  state: LateSearchState,
): Omit<AlertStateRow, 'version'> => ({
  key: lateStateKey(memberId),
  kind: 'sla',
  member_id: memberId,
  state: 'ok',
  pending_since: null,
  fired_at: null,
  last_sent_at: null,
  cursor: state.cursor,
  details: JSON.stringify(state.totals),
  updated_at: state.cursor,
});

async function storeLateState(db: Deps['db'], memberId: string, state: LateSearchState) {
  const prev = await getAlertState(db, lateStateKey(memberId));
  // Another instance may write at the same time: either cursor is a correct one.
  await saveAlertState(db, prev, lateStateRow(memberId, state));
}

/** What the alert check read of a portal's stored LateSearchState, and where new ones go. */
export interface LateStateStore {
  /** The stored row (undefined: none), read with the check's other states. */
  stored: AlertStateRow | undefined;
  /** Takes a first row to store with the check's other new states (flushWrites). */
  insert(row: Omit<AlertStateRow, 'version'>): void;
}

/**
 * Events of a portal that finished past a rule's SLA since the last search. The rollups'
 * `late` counters say whether any rule has a new one; only then are the events processed
 * since the cursor read, in steps of LATE_STEP_ROWS that let other work in between. With no
 * cursor (the first search ever, or no `memory`), the steps cover `lookbackMs`.
 */
async function findLateBreaches(
  deps: Pick<Deps, 'db'>,
  portal: PortalRow,
  rules: readonly SlaRule[],
  now: number,
  lookbackMs: number,
  memory: LateSearchMemory | undefined,
  knownTotals: ReadonlyMap<string, number> | undefined,
  lateStore: LateStateStore | undefined,
): Promise<SlaBreachRow[]> {
  // Without rules nothing is searched and the totals are not kept (an idle portal's query).
  const totals =
    rules.length === 0
      ? new Map<string, number>()
      : (knownTotals ?? (await lateTotals(deps.db, portal.id)));
  // Read once per portal and process (then kept in `memory`).
  const stored =
    memory && !memory.has(portal.id)
      ? lateStore
        ? lateStore.stored
        : await getAlertState(deps.db, lateStateKey(portal.member_id))
      : undefined;
  const prev = memory && (memory.get(portal.id) ?? lateStateOf(stored));
  const changed = rules.filter(
    (r) => !prev || (prev.totals[r.name] ?? 0) !== (totals.get(r.name) ?? 0),
  );
  const lateSince = now - lookbackMs;
  const found: SlaBreachRow[] = [];
  let after: number | undefined = prev
    ? Math.max(lateSince, prev.cursor - LATE_SETTLE_MS)
    : lateSince;
  while (changed.length > 0 && after !== undefined) {
    const step = await findLateSlaBreachesStep(
      deps.db,
      { id: portal.id, memberId: portal.member_id },
      changed,
      { after, upTo: now, lateSince },
      now,
    );
    found.push(...step.rows);
    after = step.next;
    if (after !== undefined) await new Promise((resolve) => setImmediate(resolve));
  }
  if (memory) {
    const next = {
      cursor: now,
      totals: Object.fromEntries(rules.map((r) => [r.name, totals.get(r.name) ?? 0])),
    };
    memory.set(portal.id, next);
    if (!prev && !stored && lateStore) lateStore.insert(lateStateRow(portal.member_id, next));
    else if (!prev || changed.length > 0) await storeLateState(deps.db, portal.member_id, next);
  }
  return found;
}

/** What the caller has read already for a batch of portals (detectSlaBreaches `known`). */
export interface KnownSla {
  /** The portal's SLA rules (slaRulesOf). */
  rules: readonly SlaRule[];
  /** Its events pending past each rule's SLA (findPendingSlaBreachesOf). */
  pending: (rule: SlaRule) => readonly SlaBreachRow[];
  /** Its `late` totals (lateTotalsOf). */
  lateTotals: ReadonlyMap<string, number>;
  /** With `memory`, for a portal it does not hold yet. */
  lateStore?: LateStateStore;
}

/**
 * Events of a portal past a rule's SLA (while still pending, or finished late within
 * `lateLookbackMs`), recorded or not: detectSlaBreaches without the recording, for a caller
 * that records several portals' together (recordSlaBreaches, then countFreshBreaches).
 */
export async function findSlaBreaches(
  deps: Pick<Deps, 'db' | 'clock'>,
  portal: PortalRow,
  lateLookbackMs = 24 * 3600_000,
  memory?: LateSearchMemory,
  known?: KnownSla,
): Promise<SlaBreachRow[]> {
  const now = deps.clock.now().getTime();
  const found: SlaBreachRow[] = [];
  const rules = known?.rules ?? (await slaRules(deps.db, portal.member_id));
  const ref = { id: portal.id, memberId: portal.member_id };
  for (const rule of rules) {
    found.push(
      ...(known?.pending(rule) ?? (await findPendingSlaBreaches(deps.db, ref, rule, now))),
    );
  }
  found.push(
    ...(await findLateBreaches(
      deps,
      portal,
      rules,
      now,
      lateLookbackMs,
      memory,
      known?.lateTotals,
      known?.lateStore,
    )),
  );
  return found;
}

/**
 * Counts newly recorded breaches in `b24hooks_sla_breaches_total` and logs them, one line
 * per portal.
 */
export function countFreshBreaches(
  deps: Pick<Deps, 'metrics' | 'logger'>,
  fresh: readonly SlaBreachRow[],
): void {
  const perPortal = new Map<string | null, number>();
  for (const b of fresh) {
    const portal = b.member_id ?? '';
    deps.metrics.slaBreaches.inc({ portal, rule: deps.metrics.slaRuleLabel(portal, b.rule_name) });
    perPortal.set(b.member_id, (perPortal.get(b.member_id) ?? 0) + 1);
  }
  for (const [memberId, breaches] of perPortal)
    deps.logger.warn({ memberId, breaches }, 'events passed their SLA');
}

/**
 * Finds events of a portal past a rule's SLA (while still pending, or finished late within
 * `lateLookbackMs`), records each once, and counts it in `b24hooks_sla_breaches_total`.
 * `memory` (the monitor's) makes the late search incremental (see findLateBreaches).
 */
export async function detectSlaBreaches(
  deps: Pick<Deps, 'db' | 'clock' | 'metrics' | 'logger'>,
  portal: PortalRow,
  lateLookbackMs = 24 * 3600_000,
  memory?: LateSearchMemory,
  known?: KnownSla,
): Promise<SlaBreachRow[]> {
  const found = await findSlaBreaches(deps, portal, lateLookbackMs, memory, known);
  const fresh = await recordSlaBreaches(deps.db, found);
  countFreshBreaches(deps, fresh);
  return fresh;
}
