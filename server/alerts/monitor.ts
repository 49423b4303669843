import { uiLang } from '../lib/lang.js';
import type { Deps } from '../deps.js';
import { toError } from '../lib/errors.js';
import { chosenEvents, eventHandlerUrl, LIFECYCLE_BINDINGS } from '../install/bindings.js';
import {
  backlogByPortal,
  failedEventsBetween,
  getAlertState,
  listAlertStates,
  saveAlertState,
  type AlertStateRow,
} from '../../db/stores/alerts.js';
import {
  listPortals,
  portalEvents,
  updatePortal,
  type PortalRow,
} from '../../db/stores/portals.js';
import { pruneRollups } from '../../db/stores/rollups.js';
import { pendingSlaBreaches } from '../../db/stores/sla.js';
import { destinationJson, openDestinations } from '../../db/stores/destinations.js';
import { stepCondition, type ConditionReading, type NextState } from './condition.js';
import {
  backlogText,
  destinationText,
  driftText,
  failedDigestText,
  reauthText,
  slaText,
  type Scope,
  type Text,
} from './messages.js';
import { alertDestinations, alertJobs, enqueueAlertJobs } from './send.js';
import { detectSlaBreaches } from './sla.js';
import type { AlertCheckReport, AlertMessage, AlertPhase } from './types.js';

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
  /** The failed-events digest looks this far back the first time. @default 24 h */
  failedLookbackMs?: number;
  /**
   * Several instances (issue 9): whether this instance is the one that checks now. The timer
   * skips its tick otherwise, so N instances make one set of checks and one set of binding
   * audits, not N. (Two checks at once would still alert once: `alert_state` is written
   * under an optimistic lock.) @default always
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

/**
 * The alert monitor (issue 7): backlog per portal and in total, events failed for good
 * (digest), portals needing re-authorisation, subscription drift, SLA breaches. Condition
 * state lives in `alert_state`, so a restart neither repeats an alert nor forgets one.
 */
export function createAlertMonitor(deps: Deps, opts: AlertMonitorOptions = {}): AlertMonitor {
  const { db, config, logger } = deps;
  const recoverRatio = opts.recoverRatio ?? 0.8;
  const driftGraceMs = opts.driftGraceMs ?? 10 * 60_000;
  const failedLookbackMs = opts.failedLookbackMs ?? 24 * 3600_000;
  const cooldownMs = config.alerts.cooldownMinutes * 60_000;
  const dashboard = `${config.appUrl}${deps.manifest.handlers.app}`;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<unknown> | undefined;

  const scopeOf = (p: PortalRow | undefined): Scope => ({
    label: p ? `${p.domain} (${p.member_id})` : 'all portals',
    lang: uiLang(p?.lang),
  });

  /**
   * Stores the new state and the message's jobs in one transaction, so a message is queued
   * exactly when its state says it was sent. False when another instance moved the state first.
   */
  async function commit(
    portal: PortalRow | undefined,
    prev: AlertStateRow | undefined,
    next: NextState,
    message: AlertMessage | undefined,
    report: AlertCheckReport,
    now: number,
  ): Promise<void> {
    const to = message ? await alertDestinations(deps, message.memberId) : {};
    const planned = message
      ? alertJobs(message, to, portal?.id ?? null, config.worker.maxAttempts, now)
      : undefined;
    const done = await db.transaction(async (trx) => {
      if (!(await saveAlertState(trx, prev, next))) return false;
      if (planned) await enqueueAlertJobs(trx, planned.jobs, now);
      return true;
    });
    if (!done || !message || !planned) return;
    report.sent.push({ ...message, channels: planned.channels });
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

  /** Steps one firing/ok condition and commits what it decided. */
  async function condition(
    portal: PortalRow | undefined,
    reading: ConditionReading,
    text: (phase: AlertPhase) => Text,
    report: AlertCheckReport,
    now: number,
  ): Promise<void> {
    const prev = await getAlertState(db, reading.key);
    const { next, phase } = stepCondition(prev, reading, now, cooldownMs);
    if (!next) return;
    const message = phase
      ? { kind: reading.kind, phase, key: reading.key, memberId: reading.memberId, ...text(phase) }
      : undefined;
    await commit(portal, prev, next, message, report, now);
  }

  async function backlog(portals: PortalRow[], report: AlertCheckReport, now: number) {
    const threshold = config.alerts.backlogThreshold;
    const recoverBelow = Math.floor(threshold * recoverRatio);
    const rows = await backlogByPortal(db);
    const total = {
      backlog: rows.reduce((s, r) => s + r.backlog, 0),
      oldestAt: Math.min(now, ...rows.map((r) => r.oldestAt)),
    };
    const reading = (key: string, memberId: string | null, n: number, oldestAt: number) => {
      const f = {
        backlog: n,
        threshold,
        recoverBelow,
        oldestPendingSeconds: Math.floor((now - oldestAt) / 1000),
      };
      return {
        r: {
          key,
          kind: 'backlog' as const,
          memberId,
          bad: n > threshold,
          recovered: n < recoverBelow,
          details: f,
        },
        f,
      };
    };
    const all = reading('backlog:total', null, total.backlog, total.oldestAt);
    await condition(
      undefined,
      all.r,
      (phase) => backlogText(phase, scopeOf(undefined), all.f, dashboard),
      report,
      now,
    );
    for (const p of portals) {
      const row = rows.find((r) => r.portalId === p.id);
      const one = reading(
        `backlog:${p.member_id}`,
        p.member_id,
        row?.backlog ?? 0,
        row?.oldestAt ?? now,
      );
      await condition(
        p,
        one.r,
        (phase) => backlogText(phase, scopeOf(p), one.f, dashboard),
        report,
        now,
      );
    }
  }

  /** Step destinations with an open circuit (issue 18); those closed again recover. */
  async function destinations(report: AlertCheckReport, now: number) {
    const open = (await openDestinations(db)).map(destinationJson);
    const firing = (await listAlertStates(db)).filter(
      (s) => s.kind === 'destination' && s.state === 'firing',
    );
    const key = (d: string) => `destination:${d}`.slice(0, 128);
    const readings = [
      ...open.map((d) => ({ d, bad: true })),
      ...firing
        .filter((s) => !open.some((d) => key(d.destination) === s.key))
        .map((s) => ({
          d: { ...(JSON.parse(s.details ?? '{}') as ReturnType<typeof destinationJson>) },
          bad: false,
        })),
    ];
    for (const { d, bad } of readings) {
      await condition(
        undefined,
        {
          key: key(d.destination),
          kind: 'destination',
          memberId: null,
          bad,
          recovered: !bad,
          details: d,
        },
        (phase) => destinationText(phase, d, dashboard),
        report,
        now,
      );
    }
  }

  async function failedDigest(p: PortalRow, report: AlertCheckReport, now: number) {
    const key = `failed:${p.member_id}`;
    const prev = await getAlertState(db, key);
    if (prev?.last_sent_at != null && now - prev.last_sent_at < cooldownMs) return;
    const after = prev?.cursor ?? now - failedLookbackMs;
    const limit = 500;
    const failed = await failedEventsBetween(db, p.id, after, now, limit);
    if (failed.length === 0) return;
    const text = failedDigestText(scopeOf(p), failed, failed.length >= limit, dashboard);
    const next: NextState = {
      key,
      kind: 'failed',
      member_id: p.member_id,
      state: 'ok',
      pending_since: null,
      fired_at: prev?.fired_at ?? null,
      last_sent_at: now,
      cursor: Math.max(...failed.map((e) => e.processedAt)),
      details: JSON.stringify({ failed: failed.length }),
      updated_at: now,
    };
    await commit(
      p,
      prev,
      next,
      { kind: 'failed', phase: 'digest', key, memberId: p.member_id, ...text },
      report,
      now,
    );
  }

  async function portalConditions(p: PortalRow, report: AlertCheckReport, now: number) {
    const gone = p.status === 'uninstalled';
    await condition(
      p,
      {
        key: `reauth:${p.member_id}`,
        kind: 'reauth',
        memberId: p.member_id,
        // A pause at refresh (invalid_client, PAYMENT_REQUIRED) stops processing the same way.
        bad: p.status === 'needs_reauth' || (p.status === 'installed' && !!p.pause_reason),
        recovered: p.status !== 'needs_reauth' && !p.pause_reason,
        silent: gone,
        details: { status: p.pause_reason ?? p.status },
      },
      (phase) => reauthText(phase, scopeOf(p), dashboard, p.pause_reason),
      report,
      now,
    );

    // Drift: what the last binding sync or audit recorded against what is wanted.
    let missing: string[] = [];
    if (!gone && p.auth_mode === 'oauth' && p.events_bound !== null) {
      const bound = new Set(portalEvents(p).map((e) => e.toUpperCase()));
      const wanted = [
        ...new Set([...LIFECYCLE_BINDINGS, ...(await chosenEvents(deps, p.member_id))]),
      ];
      missing = wanted.filter((e) => !bound.has(e));
    }
    await condition(
      p,
      {
        key: `drift:${p.member_id}`,
        kind: 'drift',
        memberId: p.member_id,
        bad: missing.length > 0,
        recovered: missing.length === 0,
        graceMs: driftGraceMs,
        silent: gone,
        details: { missing },
      },
      (phase) => driftText(phase, scopeOf(p), missing, dashboard),
      report,
      now,
    );

    if (!gone) report.slaBreaches += (await detectSlaBreaches(deps, p, undefined, lateSeen)).length;
    const pending = await pendingSlaBreaches(db, p.member_id);
    const f = {
      events: pending.events,
      byRule: pending.byRule,
      oldestSeconds: Math.floor((now - (pending.oldestReceivedAt ?? now)) / 1000),
    };
    await condition(
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
      (phase) => slaText(phase, scopeOf(p), f, dashboard),
      report,
      now,
    );
  }

  /** Per portal and rule, the late events the rollups counted at the last SLA check. */
  const lateSeen = new Map<string, number>();
  /** The rollups' own horizon is kept by the checking instance, once an hour. */
  let lastRollupPrune = 0;

  const auditEveryMs = opts.auditEveryMs ?? 15 * 60_000;
  const lastAudit = new Map<number, number>();

  /** Records what Bitrix24 really has bound to our handler (event.get) in `events_bound`. */
  async function auditBindings(p: PortalRow, now: number): Promise<PortalRow> {
    if (p.status !== 'installed' || p.auth_mode !== 'oauth' || !p.access_token_enc) return p;
    const last = lastAudit.get(p.id);
    if (last !== undefined && now - last < auditEveryMs) return p;
    lastAudit.set(p.id, now);
    try {
      const rows = await deps.bitrix.call<
        Array<{ event?: string; handler?: string; offline?: number | string }>
      >(p, 'event.get');
      const handler = eventHandlerUrl(deps);
      const actual = [
        ...new Set(
          (Array.isArray(rows) ? rows : [])
            .filter((b) => Number(b.offline ?? 0) === 0 && b.handler === handler && b.event)
            .map((b) => String(b.event).toUpperCase()),
        ),
      ];
      const events_bound = JSON.stringify(actual);
      if (events_bound !== p.events_bound) await updatePortal(db, p.id, { events_bound });
      return { ...p, events_bound };
    } catch (e) {
      logger.warn(
        { memberId: p.member_id, err: toError(e).message },
        'binding audit (event.get) failed',
      );
      return p;
    }
  }

  async function checkOnce(): Promise<AlertCheckReport> {
    const report: AlertCheckReport = { sent: [], slaBreaches: 0 };
    const now = deps.clock.now().getTime();
    const portals = await Promise.all((await listPortals(db)).map((p) => auditBindings(p, now)));
    await backlog(portals, report, now);
    await destinations(report, now);
    for (const p of portals) {
      await portalConditions(p, report, now);
      if (p.status !== 'uninstalled') await failedDigest(p, report, now);
    }
    if (report.sent.some((s) => s.channels.length > 0)) opts.onEnqueued?.();
    if (now - lastRollupPrune >= 3600_000) {
      lastRollupPrune = now;
      await pruneRollups(db, now);
    }
    return report;
  }

  const tick = () => {
    if (current) return;
    const lead = opts.leader ?? (async () => true);
    current = lead()
      .then((yes) => (yes ? checkOnce() : undefined))
      .catch((e: unknown) => logger.error({ err: toError(e) }, 'alert check failed'))
      .finally(() => {
        current = undefined;
      });
  };

  return {
    checkOnce,
    start(intervalMs = 30_000) {
      if (timer) return;
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await current;
    },
  };
}
