import type { PortalRow } from '../../db/stores/portals.js';
import {
  pendingSlaBreaches,
  pendingSlaBreachesOf,
  recordSlaBreaches,
  type PendingBreaches,
  type SlaBreachRow,
  type SlaRule,
} from '../../db/stores/sla.js';
import type { NextState } from './condition.js';
import { slaText } from './messages.js';
import {
  conditionState,
  scopeOf,
  slaRuleKey,
  stepAndCommit,
  type Check,
  type PortalBatch,
} from './monitor-context.js';
import { countFreshBreaches, findSlaBreaches, lateStateKey, type KnownSla } from './sla.js';

const NONE: PendingBreaches = { events: 0, byRule: [], oldestReceivedAt: undefined };

const batchOf = (check: Check, p: PortalRow): PortalBatch | undefined =>
  check.batch?.members.has(p.member_id) ? check.batch : undefined;

/** What the portal's batch read for its SLA search (undefined: no batch holds it). */
async function knownOf(check: Check, p: PortalRow): Promise<KnownSla | undefined> {
  const b = batchOf(check, p);
  if (!b) return undefined;
  const newStates = check.newStates;
  const lateStore =
    newStates && !check.ctx.late.has(p.id)
      ? {
          stored: await conditionState(check, lateStateKey(p.member_id), p.member_id),
          insert: (row: NextState) => newStates.push(row),
        }
      : undefined;
  return {
    rules: b.slaRules.get(p.member_id) ?? [],
    pending: (rule: SlaRule) => b.pendingBreaches.get(`${p.id}\u0000${slaRuleKey(rule)}`) ?? [],
    lateTotals: b.lateTotals.get(p.id) ?? new Map<string, number>(),
    lateStore,
  };
}

/**
 * Finds the new SLA breaches of some portals (at most PORTAL_BATCH: bound parameters),
 * records them together, and returns each portal's recorded breaches still pending. A
 * portal of the check's batch without a new one keeps what its batch read (breaches are
 * recorded only by the check); those with new ones are read again, in one query. With an
 * SLA rule put in the default map, the first check recorded each portal's breaches, and read
 * its pending ones, on their own: a transaction and two queries or more per portal.
 */
async function slaNowOf(
  check: Check,
  portals: readonly PortalRow[],
): Promise<Map<number, PendingBreaches>> {
  const { ctx } = check;
  const { db } = ctx.deps;
  const found: SlaBreachRow[] = [];
  for (const p of portals) {
    if (p.status === 'uninstalled') continue;
    found.push(
      ...(await findSlaBreaches(ctx.deps, p, undefined, ctx.late, await knownOf(check, p))),
    );
  }
  const fresh = await recordSlaBreaches(db, found);
  countFreshBreaches(ctx.deps, fresh);
  check.report.slaBreaches += fresh.length;
  const withFresh = new Set(fresh.map((r) => r.portal_id));
  const ref = (p: PortalRow) => ({ id: p.id, memberId: p.member_id });
  const reread = await pendingSlaBreachesOf(
    db,
    portals.filter((p) => withFresh.has(p.id)).map(ref),
  );
  const out = new Map<number, PendingBreaches>();
  for (const p of portals) {
    const b = batchOf(check, p);
    const known = b && (b.withBreaches.has(p.member_id) ? b.pendingSla.get(p.id) : NONE);
    out.set(p.id, reread.get(p.id) ?? known ?? (await pendingSlaBreaches(db, ref(p))));
  }
  return out;
}

/**
 * Records the new SLA breaches of the check's batch (`portals`, the ones it holds) before
 * their conditions are stepped; checkSla takes their pending breaches from it.
 */
export async function detectBatchBreaches(check: Check, portals: readonly PortalRow[]) {
  if (check.batch) check.batch = { ...check.batch, slaNow: await slaNowOf(check, portals) };
}

/** Steps the portal's "events past their SLA" condition, its new breaches recorded first. */
export async function checkSla(check: Check, p: PortalRow): Promise<void> {
  const { ctx, now } = check;
  const gone = p.status === 'uninstalled';
  const pending =
    batchOf(check, p)?.slaNow?.get(p.id) ?? (await slaNowOf(check, [p])).get(p.id) ?? NONE;
  const f = {
    events: pending.events,
    byRule: pending.byRule,
    oldestSeconds: Math.floor((now - (pending.oldestReceivedAt ?? now)) / 1000),
  };
  await stepAndCommit(
    check,
    p,
    {
      key: `sla:${p.member_id}`,
      kind: 'sla',
      memberId: p.member_id,
      bad: !gone && pending.events > 0,
      recovered: gone || pending.events === 0,
      silent: gone,
      details: f,
    },
    (phase) => slaText(phase, scopeOf(p), f, ctx.dashboard),
  );
}
