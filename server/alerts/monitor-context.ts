import { uiLang } from '../lib/lang.js';
import type { Deps } from '../deps.js';
import {
  ALERT_SETTINGS,
  alertStatesOfPortals,
  insertAlertStates,
  portalAlertChannelsOf,
  failedEventsOf,
  portalsWithFailedBetween,
  type FailedEvent,
  getAlertState,
  updateAlertStates,
  type AlertStateRow,
} from '../../db/stores/alerts.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { DEFAULT_SCOPE, getSetting, settingsOfScopes } from '../../db/stores/settings.js';
import {
  findPendingSlaBreachesOf,
  lateTotalsOf,
  pendingSlaBreachesOf,
  portalsWithSlaBreaches,
  type PendingBreaches,
  type SlaBreachRow,
  type SlaRule,
} from '../../db/stores/sla.js';
import { slaRulesOf } from '../rules/sla-rules.js';
import { EVENTS_KEY } from '../install/bindings.js';
import { effectiveMapOf, RULES_KEY } from '../rules/map-store.js';
import { stepCondition, type ConditionReading, type NextState } from './condition.js';
import { alertDestinations, alertJobs, enqueueAlertJobs } from './send.js';
import type { LateSearchMemory } from './sla.js';
import type PQueue from 'p-queue';
import type { AlertCheckReport, AlertMessage, AlertPhase, Scope, Text } from './types.js';

/**
 * What every check of one monitor shares: its deps, its options resolved to values, and the
 * little state it keeps between checks (audit times, the late-SLA search's cursors).
 */
export interface MonitorContext {
  readonly deps: Deps;
  /** A firing backlog recovers below this share of ALERT_BACKLOG_THRESHOLD. */
  readonly recoverRatio: number;
  readonly driftGraceMs: number;
  readonly failedLookbackMs: number;
  readonly auditEveryMs: number;
  /** ALERT_COOLDOWN_MINUTES in ms. */
  readonly cooldownMs: number;
  /** The app page the messages link to. */
  readonly dashboard: string;
  /** When each portal's bindings were last read with `event.get`. */
  readonly lastAudit: Map<number, number>;
  /** The binding audits under way: AUDIT_CONCURRENCY at a time (binding-audit.ts). */
  readonly audits: PQueue;
  /** How long a check waits for the audits it started before going on without them. */
  readonly auditWaitMs: number;
  /** Per portal, where the search for events finished past their SLA got to. */
  readonly late: LateSearchMemory;
  /** The rollups' own horizon is kept by the checking instance, once an hour. */
  lastRollupPrune: number;
}

/** One `checkOnce()`: the context, the time it reads, and what it has done so far. */
export interface Check {
  readonly ctx: MonitorContext;
  readonly now: number;
  readonly report: AlertCheckReport;
  /** The portals' condition states, read in bulk when the check began. */
  readonly states?: StateSnapshot;
  /** What the conditions of the portals being checked read, in bulk (readPortalBatch). */
  batch?: PortalBatch;
  /**
   * First states of conditions that had none and say nothing yet (a drift in its grace
   * time, a late-SLA search's cursor), stored together by flushWrites: thousands of new
   * portals were that many statements and transactions at their first check.
   */
  readonly newStates?: NextState[];
  /**
   * Alerts decided and states changed, stored together by flushWrites after each batch of
   * portals: one transaction each (state, jobs) was thousands when thousands of portals
   * alerted at once, as when an SLA rule is put in the default map.
   */
  readonly commits?: AlertCommit[];
}

/**
 * What the per-portal conditions of up to PORTAL_BATCH portals read, a few queries for the
 * lot, read just before they are stepped. One query per portal and kind (its chosen events,
 * rule map, recorded SLA breaches, newly failed events) was 25,000 queries a check, every
 * 30 s on the main thread, with 5,000 portals installed, nearly all idle. Nothing is kept
 * between checks, so a setting written by another instance counts at the next check, as it
 * did.
 */
export interface PortalBatch {
  readonly members: ReadonlySet<string>;
  /**
   * Settings `events`, `rules` and alert channels of these portals, and the default `rules`,
   * by scope.
   */
  readonly settings: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
  /** The member_ids with any SLA breach recorded. */
  readonly withBreaches: ReadonlySet<string>;
  /** Per portal id of those, its recorded breaches whose events are still unprocessed. */
  readonly pendingSla: ReadonlyMap<number, PendingBreaches>;
  /** Per member_id, its SLA rules (not for uninstalled portals). */
  readonly slaRules: ReadonlyMap<string, readonly SlaRule[]>;
  /** Per portal id with SLA rules, its `late` totals (lateTotalsOf; absent: none). */
  readonly lateTotals: ReadonlyMap<number, ReadonlyMap<string, number>>;
  /** Per portal id and rule (slaRuleKey), its events pending past the SLA not yet recorded. */
  readonly pendingBreaches: ReadonlyMap<string, readonly SlaBreachRow[]>;
  /** Per portal id, where its failed-events digest would look from (when it was asked). */
  readonly failedAfter: ReadonlyMap<number, number>;
  /**
   * Per portal id of those, its events failed for good since then (failedEventsOf, at most
   * FAILED_DIGEST_LIMIT; absent: none): each digest reading its own was two queries, and
   * hundreds of portals have some at a first check.
   */
  readonly failed: ReadonlyMap<number, readonly FailedEvent[]>;
  /**
   * Per portal id, its recorded breaches still pending once the check recorded its new ones
   * (sla-check.ts detectBatchBreaches).
   */
  readonly slaNow?: ReadonlyMap<number, PendingBreaches>;
}

export const PORTAL_BATCH = 500;

/** Most events a failed-events digest reads (then it says "500+"). */
export const FAILED_DIGEST_LIMIT = 500;

/** A rule's identity for the batch's pending-breach search: everything the search reads. */
export const slaRuleKey = (r: SlaRule) => JSON.stringify([r.name, r.slaSeconds, [...r.on]]);

/** Where a portal's failed-events digest looks from, given its state (undefined: cooldown). */
export function failedDigestFrom(
  ctx: MonitorContext,
  now: number,
  prev: AlertStateRow | undefined,
): number | undefined {
  if (prev?.last_sent_at != null && now - prev.last_sent_at < ctx.cooldownMs) return undefined;
  return prev?.cursor ?? now - ctx.failedLookbackMs;
}

export async function readPortalBatch(
  check: Check,
  portals: readonly PortalRow[],
): Promise<PortalBatch> {
  const { db } = check.ctx.deps;
  const members = portals.map((p) => p.member_id);
  const settings = await settingsOfScopes(
    db,
    [...members, DEFAULT_SCOPE],
    [EVENTS_KEY, RULES_KEY, ALERT_SETTINGS.telegramChatId, ALERT_SETTINGS.email],
  );
  const withBreaches = await portalsWithSlaBreaches(db, members);
  const pendingSla = await pendingSlaBreachesOf(
    db,
    portals
      .filter((p) => withBreaches.has(p.member_id))
      .map((p) => ({ id: p.id, memberId: p.member_id })),
  );
  // Portals applying the same SLA rule (the default map's, typically) are searched together.
  const slaRules = new Map<string, readonly SlaRule[]>();
  const byRule = new Map<
    string,
    { rule: SlaRule; portals: Array<{ id: number; memberId: string }> }
  >();
  for (const p of portals) {
    if (p.status === 'uninstalled') continue;
    const rules = slaRulesOf(effectiveMapOf(settings, p.member_id));
    slaRules.set(p.member_id, rules);
    for (const rule of rules) {
      const group = byRule.get(slaRuleKey(rule)) ?? { rule, portals: [] };
      group.portals.push({ id: p.id, memberId: p.member_id });
      byRule.set(slaRuleKey(rule), group);
    }
  }
  const lateTotals = await lateTotalsOf(
    db,
    portals.filter((p) => (slaRules.get(p.member_id) ?? []).length > 0).map((p) => p.id),
  );
  const pendingBreaches = new Map<string, readonly SlaBreachRow[]>();
  for (const [key, { rule, portals: group }] of byRule) {
    for (const [id, rows] of await findPendingSlaBreachesOf(db, group, rule, check.now))
      pendingBreaches.set(`${id}\u0000${key}`, rows);
  }
  // The digest's starting point from the state its check will get (the snapshot's, when it
  // has it): the digest reads its events only where this finds one.
  const failedAfter = new Map<number, number>();
  const s = check.states;
  for (const p of portals) {
    const key = `failed:${p.member_id}`;
    if (p.status === 'uninstalled' || !s || !s.portals.has(p.member_id) || s.used.has(key))
      continue;
    const after = failedDigestFrom(check.ctx, check.now, s.rows.get(key));
    if (after !== undefined) failedAfter.set(p.id, after);
  }
  const withFailed = await portalsWithFailedBetween(
    db,
    [...failedAfter].map(([portalId, after]) => ({ portalId, after })),
    check.now,
  );
  const failed = await failedEventsOf(
    db,
    [...withFailed].map((portalId) => ({ portalId, after: failedAfter.get(portalId) ?? 0 })),
    check.now,
    FAILED_DIGEST_LIMIT,
  );
  return {
    members: new Set(members),
    settings,
    withBreaches,
    pendingSla,
    slaRules,
    lateTotals,
    pendingBreaches,
    failedAfter,
    failed,
  };
}

/** A portal's own setting: from the check's batch when it holds the portal, else read now. */
export async function portalSetting(check: Check, memberId: string, key: string): Promise<unknown> {
  const b = check.batch;
  if (b?.members.has(memberId)) return b.settings.get(memberId)?.get(key);
  return getSetting<unknown>(check.ctx.deps.db, memberId, key);
}

/**
 * The states of every condition of some portals, read a few hundred portals per query. A
 * check steps five or six conditions of every portal, and reading each state on its own
 * was 25,000 queries a check (every 30 s) with 5,000 portals installed, nearly all idle.
 */
export interface StateSnapshot {
  /** The member_ids whose states were read: a key of theirs missing from `rows` has none. */
  readonly portals: ReadonlySet<string>;
  readonly rows: ReadonlyMap<string, AlertStateRow>;
  /** Keys already handed out: a second read of one goes to the database (it may have moved). */
  readonly used: Set<string>;
}

const SNAPSHOT_CHUNK = 500;

export async function snapshotStates(
  db: MonitorContext['deps']['db'],
  memberIds: readonly string[],
): Promise<StateSnapshot> {
  const rows = new Map<string, AlertStateRow>();
  for (let i = 0; i < memberIds.length; i += SNAPSHOT_CHUNK) {
    for (const r of await alertStatesOfPortals(db, memberIds.slice(i, i + SNAPSHOT_CHUNK)))
      rows.set(r.key, r);
  }
  return { portals: new Set(memberIds), rows, used: new Set() };
}

/**
 * A condition's state: from the check's snapshot the first time it is asked for (a stale one
 * only makes the optimistic save fail, to be stepped again at the next check), else read now.
 */
export async function conditionState(
  check: Check,
  key: string,
  memberId: string | null,
): Promise<AlertStateRow | undefined> {
  const s = check.states;
  if (s && memberId !== null && s.portals.has(memberId) && !s.used.has(key)) {
    s.used.add(key);
    return s.rows.get(key);
  }
  return getAlertState(check.ctx.deps.db, key);
}

/** Where a message's figures are: a portal (in its language) or all of them. */
export const scopeOf = (p: PortalRow | undefined): Scope => ({
  label: p ? `${p.domain} (${p.member_id})` : 'all portals',
  lang: uiLang(p?.lang),
});

/** A condition's new state and what its message queues, to be stored by storeCommits. */
export interface AlertCommit {
  prev: AlertStateRow | undefined;
  next: NextState;
  message: AlertMessage | undefined;
  planned: ReturnType<typeof alertJobs> | undefined;
}

/**
 * Stores a condition's new state with its message's jobs, so a message is queued exactly
 * when its state says it was sent. In a check that gathers `commits` it is stored at the
 * next flushWrites with the others, else at once. Nothing is reported when another instance
 * moved the state first.
 */
export async function commitAlert(
  check: Check,
  portal: PortalRow | undefined,
  prev: AlertStateRow | undefined,
  next: NextState,
  message: AlertMessage | undefined,
): Promise<void> {
  const { deps } = check.ctx;
  if (!message && !prev && check.newStates) {
    check.newStates.push(next);
    return;
  }
  // A portal of the batch: its channels were read with its batch (not two queries each).
  const b = check.batch;
  const own =
    message?.memberId && b?.members.has(message.memberId)
      ? portalAlertChannelsOf({
          telegramChatId: b.settings.get(message.memberId)?.get(ALERT_SETTINGS.telegramChatId),
          email: b.settings.get(message.memberId)?.get(ALERT_SETTINGS.email),
        })
      : undefined;
  const to = message ? await alertDestinations(deps, message.memberId, own) : {};
  const planned = message
    ? alertJobs(message, to, portal?.id ?? null, deps.config.worker.maxAttempts, check.now)
    : undefined;
  const commit = { prev, next, message, planned };
  if (check.commits) check.commits.push(commit);
  else await storeCommits(check, [commit]);
}

/** Most commits storeCommits stores in one transaction. */
const COMMIT_CHUNK = 250;

/**
 * Stores commits in their order, COMMIT_CHUNK a transaction: the first states in one
 * statement (insertAlertStates), the changed ones in another, each under its optimistic lock
 * (updateAlertStates), then the jobs of those stored, in the order one transaction each
 * would have queued them.
 */
async function storeCommits(check: Check, commits: readonly AlertCommit[]): Promise<void> {
  const { deps } = check.ctx;
  for (let i = 0; i < commits.length; i += COMMIT_CHUNK) {
    const chunk = commits.slice(i, i + COMMIT_CHUNK);
    const stored = await deps.db.transaction(async (trx) => {
      const inserted = await insertAlertStates(
        trx,
        chunk.filter((c) => !c.prev).map((c) => c.next),
      );
      const updated = await updateAlertStates(
        trx,
        chunk.flatMap(({ prev, next }) => (prev ? [{ prev, next }] : [])),
      );
      const done = chunk.map((c) => (c.prev ? updated : inserted).has(c.next.key));
      const jobs = chunk.flatMap((c, k) => (done[k] && c.planned ? c.planned.jobs : []));
      await enqueueAlertJobs(trx, jobs, check.now);
      return done;
    });
    for (const [k, c] of chunk.entries()) if (stored[k]) reportCommit(check, c);
  }
}

function reportCommit(check: Check, { message, planned }: AlertCommit): void {
  if (!message || !planned) return;
  const { logger } = check.ctx.deps;
  check.report.sent.push({ ...message, channels: planned.channels });
  if (planned.channels.length === 0) {
    logger.warn(
      { alert: message.key, phase: message.phase },
      'alert has no channel: set TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID or SMTP_URL + ALERT_EMAIL_TO',
    );
  } else {
    logger.info(
      { alert: message.key, phase: message.phase, channels: planned.channels },
      'alert queued',
    );
  }
}

/**
 * Stores what the check gathered so far: the first states that say nothing (a few multi-row
 * statements), then the commits (storeCommits).
 */
export async function flushWrites(check: Check): Promise<void> {
  const rows = check.newStates?.splice(0);
  if (rows?.length) await insertAlertStates(check.ctx.deps.db, rows);
  const commits = check.commits?.splice(0);
  if (commits?.length) await storeCommits(check, commits);
}

/** Steps one firing/ok condition (stepCondition) and commits what it decided. */
export async function stepAndCommit(
  check: Check,
  portal: PortalRow | undefined,
  reading: ConditionReading,
  text: (phase: AlertPhase) => Text,
): Promise<void> {
  const prev = await conditionState(check, reading.key, reading.memberId);
  const { next, phase } = stepCondition(prev, reading, check.now, check.ctx.cooldownMs);
  if (!next) return;
  const message = phase
    ? { kind: reading.kind, phase, key: reading.key, memberId: reading.memberId, ...text(phase) }
    : undefined;
  await commitAlert(check, portal, prev, next, message);
}
