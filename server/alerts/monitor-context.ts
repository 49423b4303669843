import { uiLang } from '../lib/lang.js';
import type { Deps } from '../deps.js';
import {
  alertStatesOfPortals,
  getAlertState,
  saveAlertState,
  type AlertStateRow,
} from '../../db/stores/alerts.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { stepCondition, type ConditionReading, type NextState } from './condition.js';
import { alertDestinations, alertJobs, enqueueAlertJobs } from './send.js';
import type { LateSearchMemory } from './sla.js';
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

/**
 * Stores the new state and the message's jobs in one transaction, so a message is queued
 * exactly when its state says it was sent. Nothing is reported when another instance moved
 * the state first.
 */
export async function commitAlert(
  check: Check,
  portal: PortalRow | undefined,
  prev: AlertStateRow | undefined,
  next: NextState,
  message: AlertMessage | undefined,
): Promise<void> {
  const { deps } = check.ctx;
  const { now } = check;
  const to = message ? await alertDestinations(deps, message.memberId) : {};
  const planned = message
    ? alertJobs(message, to, portal?.id ?? null, deps.config.worker.maxAttempts, now)
    : undefined;
  const done = await deps.db.transaction(async (trx) => {
    if (!(await saveAlertState(trx, prev, next))) return false;
    if (planned) await enqueueAlertJobs(trx, planned.jobs, now);
    return true;
  });
  if (!done || !message || !planned) return;
  check.report.sent.push({ ...message, channels: planned.channels });
  if (planned.channels.length === 0) {
    deps.logger.warn(
      { alert: message.key, phase: message.phase },
      'alert has no channel: set TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID or SMTP_URL + ALERT_EMAIL_TO',
    );
  } else {
    deps.logger.info(
      { alert: message.key, phase: message.phase, channels: planned.channels },
      'alert queued',
    );
  }
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
