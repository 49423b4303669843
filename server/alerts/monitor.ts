import type { Deps } from '../deps.js';
import { toError } from '../lib/errors.js';
import { listPortals } from '../../db/stores/portals.js';
import { pruneRollups } from '../../db/stores/rollups.js';
import PQueue from 'p-queue';
import { AUDIT_CONCURRENCY, withAudits } from './binding-audit.js';
import { checkBacklog, checkDestinations, checkFailedDigest, checkPortal } from './checks.js';
import { detectBatchBreaches } from './sla-check.js';
import {
  flushWrites,
  PORTAL_BATCH,
  readPortalBatch,
  snapshotStates,
  type Check,
  type MonitorContext,
} from './monitor-context.js';
import type { AlertCheckReport } from './types.js';

export interface AlertMonitorOptions {
  /** Called after alert jobs were stored (wire to `worker.notify`). */
  onEnqueued?: () => void;
  /** A firing backlog recovers below this share of ALERT_BACKLOG_THRESHOLD. @default 0.8 */
  recoverRatio?: number;
  /** Subscription drift must last this long before it alerts (a re-sync in progress). @default 10 min */
  driftGraceMs?: number;
  /**
   * How often each portal's real bindings are read with `event.get` (one REST call), so a
   * binding Bitrix24 dropped (an app update does that) shows up as drift. @default 15 min
   */
  auditEveryMs?: number;
  /**
   * How long a check waits for the binding audits it started; the rest finish in the
   * background and count at the next check. @default 2 s
   */
  auditWaitMs?: number;
  /** The failed-events digest looks this far back the first time. @default 24 h */
  failedLookbackMs?: number;
  /**
   * Several instances: whether this instance is the one that checks now. The timer skips its
   * tick otherwise, so N instances make one set of checks and one set of binding audits, not
   * N. (Two checks at once would still alert once: `alert_state` is written under an
   * optimistic lock.) @default always
   */
  leader?: () => Promise<boolean>;
}

export interface AlertMonitor {
  /**
   * One pass: reads the database, moves every condition's state, stores `alert` jobs (one
   * per channel) for what must be said. Never sends anything itself.
   */
  checkOnce(): Promise<AlertCheckReport>;
  /** Runs `checkOnce` every `intervalMs` (one at a time). @default 30 s */
  start(intervalMs?: number): void;
  /** Stops the timer and waits for a check in progress. */
  stop(): Promise<void>;
}

/** The options resolved to values, and the state a monitor keeps between its checks. */
export function monitorContext(deps: Deps, opts: AlertMonitorOptions = {}): MonitorContext {
  return {
    deps,
    recoverRatio: opts.recoverRatio ?? 0.8,
    driftGraceMs: opts.driftGraceMs ?? 10 * 60_000,
    failedLookbackMs: opts.failedLookbackMs ?? 24 * 3600_000,
    auditEveryMs: opts.auditEveryMs ?? 15 * 60_000,
    cooldownMs: deps.config.alerts.cooldownMinutes * 60_000,
    dashboard: `${deps.config.appUrl}${deps.manifest.handlers.app}`,
    lastAudit: new Map(),
    audits: new PQueue({ concurrency: AUDIT_CONCURRENCY }),
    auditWaitMs: opts.auditWaitMs ?? 2000,
    late: new Map(),
    lastRollupPrune: 0,
  };
}

/** One pass of every check (see AlertMonitor.checkOnce). */
export async function checkOnce(
  ctx: MonitorContext,
  onEnqueued?: () => void,
): Promise<AlertCheckReport> {
  const now = ctx.deps.clock.now().getTime();
  const listed = await listPortals(ctx.deps.db);
  const portals = await withAudits(ctx, listed, now);
  const states = await snapshotStates(
    ctx.deps.db,
    portals.map((p) => p.member_id),
  );
  const check: Check = {
    ctx,
    now,
    report: { sent: [], slaBreaches: 0 },
    states,
    newStates: [],
    commits: [],
  };
  await checkBacklog(check, portals);
  await checkDestinations(check, portals);
  await flushWrites(check);
  for (let i = 0; i < portals.length; i += PORTAL_BATCH) {
    const batch = portals.slice(i, i + PORTAL_BATCH);
    check.batch = await readPortalBatch(check, batch);
    await detectBatchBreaches(check, batch);
    for (const p of batch) {
      await checkPortal(check, p);
      if (p.status !== 'uninstalled') await checkFailedDigest(check, p);
    }
    await flushWrites(check);
  }
  check.batch = undefined;
  if (check.report.sent.some((s) => s.channels.length > 0)) onEnqueued?.();
  if (now - ctx.lastRollupPrune >= 3600_000) {
    ctx.lastRollupPrune = now;
    await pruneRollups(ctx.deps.db, now);
  }
  return check.report;
}

/**
 * The alert monitor: backlog per portal and in total, events failed for good (digest),
 * portals needing re-authorisation, subscription drift, SLA breaches, destinations with an
 * open circuit. Condition state lives in `alert_state`, so a restart neither repeats an
 * alert nor forgets one. The checks themselves are in checks.ts.
 */
export function createAlertMonitor(deps: Deps, opts: AlertMonitorOptions = {}): AlertMonitor {
  const ctx = monitorContext(deps, opts);
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<unknown> | undefined;
  const run = () => checkOnce(ctx, opts.onEnqueued);

  const tick = () => {
    if (current) return;
    const lead = opts.leader ?? (async () => true);
    current = lead()
      .then((yes) => (yes ? run() : undefined))
      .catch((e: unknown) => deps.logger.error({ err: toError(e) }, 'alert check failed'))
      .finally(() => {
        current = undefined;
      });
  };

  return {
    checkOnce: run,
    start(intervalMs = 30_000) {
      if (timer) return;
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      // Audits not started yet are dropped; one under way ends by its REST timeout.
      ctx.audits.clear();
      await current;
    },
  };
}
