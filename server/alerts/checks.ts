import { eventsChosen, EVENTS_KEY, LIFECYCLE_BINDINGS } from '../install/bindings.js';
import {
  failedEventsBetween,
  settlingByPortal,
  firingAlertStates,
} from '../../db/stores/alerts.js';
import { destinationJson, openDestinations } from '../../db/stores/destinations.js';
import { portalEvents, type PortalRow } from '../../db/stores/portals.js';
import { backlogCounts, oldestPendingAt } from '../../db/stores/rollups.js';
import type { NextState } from './condition.js';
import {
  backlogText,
  destinationText,
  driftText,
  failedDigestText,
  reauthText,
} from './messages.js';
import {
  commitAlert,
  conditionState,
  failedDigestFrom,
  FAILED_DIGEST_LIMIT,
  portalSetting,
  scopeOf,
  stepAndCommit,
  type Check,
} from './monitor-context.js';
import { checkSla } from './sla-check.js';
import type { OpenDestination } from './types.js';

/** Backlog in total and per portal, from the rollups, with hysteresis on recovery. */
export async function checkBacklog(check: Check, portals: readonly PortalRow[]): Promise<void> {
  const { ctx, now } = check;
  const { db } = ctx.deps;
  const threshold = ctx.deps.config.alerts.backlogThreshold;
  // Not rounded down: at a threshold of 1 that gave 0, and a backlog is never below 0, so the
  // alert never recovered (and at 2–4 a backlog under 80 % did not count).
  const recoverBelow = Math.round(threshold * ctx.recoverRatio * 100) / 100;
  const counts = await dueBacklog(check, threshold);
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
  let total = 0;
  for (const n of counts.values()) total += n;
  const oldestOfAll = total > 0 ? ((await oldestPendingAt(db)) ?? now) : now;
  const all = reading('backlog:total', null, total, Math.min(now, oldestOfAll));
  await stepAndCommit(check, undefined, all.r, (phase) =>
    backlogText(phase, scopeOf(undefined), all.f, ctx.dashboard),
  );
  // A portal's oldest pending event (four seeks) is read only where its figures are kept or
  // said: over the threshold, or firing (it may recover now). With thousands of portals in
  // backlog, reading it for each was thousands of queries at every check.
  const firing = new Set((await firingAlertStates(db, { kind: 'backlog' })).map((s) => s.key));
  for (const p of portals) {
    const key = `backlog:${p.member_id}`;
    const n = counts.get(p.id) ?? 0;
    const oldestAt =
      n > 0 && (n > threshold || firing.has(key))
        ? ((await oldestPendingAt(db, p.id)) ?? now)
        : now;
    const one = reading(key, p.member_id, n, Math.min(now, oldestAt));
    await stepAndCommit(check, p, one.r, (phase) =>
      backlogText(phase, scopeOf(p), one.f, ctx.dashboard),
    );
  }
}

/**
 * The backlog per portal id (0: no portal) without the events still in their settling time
 * (EVENT_SETTLE_MS after receipt, not yet due): at a steady 50 deliveries a second those
 * alone would be a standing backlog of 50 while processing keeps up. Read only when a count
 * is over the threshold.
 */
async function dueBacklog(check: Check, threshold: number): Promise<Map<number, number>> {
  const { db, config } = check.ctx.deps;
  const counts = new Map([...(await backlogCounts(db))].filter(([, n]) => n > 0));
  const settleMs = config.worker.settleMs;
  let total = 0;
  for (const n of counts.values()) total += n;
  if (settleMs === 0 || (total <= threshold && [...counts.values()].every((n) => n <= threshold)))
    return counts;
  const settling = await settlingByPortal(db, check.now - settleMs);
  return new Map(
    [...counts].map(([p, n]) => [p, Math.max(0, n - (settling.get(p) ?? 0))] as const),
  );
}

/**
 * Destinations with an open circuit fire; those closed again recover. A portal's own
 * destinations (its http hosts, its REST endpoint) are one alert for that portal, in its
 * language and to its channels, however many of them its rules name: a portal's admins
 * cannot fill the operator's chat with one alert per host. The operator's (Telegram API,
 * SMTP server, SMS gateway) are app-wide, one alert each. The owner of an http host is in
 * its key (`#<portal id>`); of a REST endpoint, the portal whose jobs wait for it (by id: a
 * domain changes with a rename and may be reused).
 */
export async function checkDestinations(
  check: Check,
  portals: readonly PortalRow[],
): Promise<void> {
  const { db } = check.ctx.deps;
  const byId = new Map(portals.map((p) => [p.id, p]));
  type Group = { portal?: PortalRow; list: OpenDestination[] };
  const groups = new Map<string, Group>();
  const add = (portal: PortalRow | undefined, d: OpenDestination) => {
    const key = portal
      ? `destinations:${portal.member_id}`
      : `destination:${d.destination}`.slice(0, 128);
    const group = groups.get(key) ?? { portal, list: [] };
    const same = group.list.find((x) => x.destination === d.destination);
    if (same) same.waitingJobs += d.waitingJobs;
    else group.list.push({ ...d });
    groups.set(key, group);
  };
  const open = await openDestinations(db);
  // Open with nothing waiting while its cool-down or probe runs (a claimed job no longer
  // counts as waiting): neither down nor over yet.
  const settling = new Set<string>();
  for (const row of open) {
    const d = destinationJson(row);
    if (row.waiting === 0) {
      // Else nothing waits for it (its rule changed, its events went): no alert, and no
      // probe will close it until a step names it again.
      if ((row.retry_at ?? 0) > check.now) settling.add(row.key);
      continue;
    }
    const own = /#(\d+)$/.exec(row.key);
    if (own) add(byId.get(Number(own[1])), d);
    else if (row.key.startsWith('rest:')) {
      for (const [portalId, n] of row.waitingByPortal)
        add(byId.get(portalId), { ...d, waitingJobs: n });
    } else add(undefined, d);
  }
  const readings: Array<{ key: string; group: Group; bad: boolean; silent?: boolean }> = [
    ...[...groups].map(([key, group]) => ({ key, group, bad: true })),
  ];
  for (const s of await firingAlertStates(db, { kind: 'destination' })) {
    if (groups.has(s.key)) continue;
    const details = JSON.parse(s.details ?? '{}') as OpenDestination | { list: OpenDestination[] };
    const portal = portals.find((p) => p.member_id === s.member_id);
    const list = 'list' in details ? details.list : [details];
    // What it was about: the destinations it named, and for a portal every open one of its
    // own (its state keeps at most 50 of them).
    const about = new Set(list.map((d) => d.destination));
    if (portal) for (const o of open) if (o.key.endsWith(`#${portal.id}`)) about.add(o.key);
    if ([...about].some((k) => settling.has(k))) continue;
    // Still open, but nothing waits any more: the alert ends without "reachable again".
    const silent = open.some((o) => about.has(o.key));
    readings.push({ key: s.key, group: { portal, list }, bad: false, silent });
  }
  for (const { key, group, bad, silent } of readings) {
    const { portal, list } = group;
    await stepAndCommit(
      check,
      portal,
      {
        key,
        kind: 'destination',
        memberId: portal?.member_id ?? null,
        bad,
        recovered: !bad,
        silent,
        // Kept with the state and shown on the dashboard: bounded, whatever a portal's rules name.
        details: portal ? { list: list.slice(0, 50) } : list[0],
      },
      (phase) =>
        destinationText(phase, list, check.ctx.dashboard, portal ? scopeOf(portal) : undefined),
    );
  }
}

/** Events failed for good since the last digest, at most one digest per cooldown. */
export async function checkFailedDigest(check: Check, p: PortalRow): Promise<void> {
  const { ctx, now } = check;
  const key = `failed:${p.member_id}`;
  const prev = await conditionState(check, key, p.member_id);
  const after = failedDigestFrom(ctx, now, prev);
  if (after === undefined) return;
  // The batch read them from the same point (absent: none).
  const b = check.batch;
  const limit = FAILED_DIGEST_LIMIT;
  const failed =
    b && b.failedAfter.get(p.id) === after
      ? (b.failed.get(p.id) ?? [])
      : await failedEventsBetween(ctx.deps.db, p.id, after, now, limit);
  if (failed.length === 0) return;
  const text = failedDigestText(scopeOf(p), failed, failed.length >= limit, ctx.dashboard);
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
  const message = { kind: 'failed' as const, phase: 'digest' as const, key, memberId: p.member_id };
  await commitAlert(check, p, prev, next, { ...message, ...text });
}

/** A portal needing re-authorisation (or paused at a token refresh). */
async function checkReauth(check: Check, p: PortalRow): Promise<void> {
  const gone = p.status === 'uninstalled';
  await stepAndCommit(
    check,
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
    (phase) => reauthText(phase, scopeOf(p), check.ctx.dashboard, p.pause_reason),
  );
}

/** Drift: what the last binding sync or audit recorded against what is wanted. */
async function checkDrift(check: Check, p: PortalRow): Promise<void> {
  const gone = p.status === 'uninstalled';
  let missing: string[] = [];
  if (!gone && p.auth_mode === 'oauth' && p.events_bound !== null) {
    const bound = new Set(portalEvents(p).map((e) => e.toUpperCase()));
    const wanted = [
      ...new Set([
        ...LIFECYCLE_BINDINGS,
        ...eventsChosen(check.ctx.deps, await portalSetting(check, p.member_id, EVENTS_KEY)),
      ]),
    ];
    missing = wanted.filter((e) => !bound.has(e));
  }
  await stepAndCommit(
    check,
    p,
    {
      key: `drift:${p.member_id}`,
      kind: 'drift',
      memberId: p.member_id,
      bad: missing.length > 0,
      recovered: missing.length === 0,
      graceMs: check.ctx.driftGraceMs,
      silent: gone,
      details: { missing },
    },
    (phase) => driftText(phase, scopeOf(p), missing, check.ctx.dashboard),
  );
}

/** The conditions of one portal: re-authorisation, drift, SLA. */
export async function checkPortal(check: Check, p: PortalRow): Promise<void> {
  await checkReauth(check, p);
  await checkDrift(check, p);
  await checkSla(check, p);
}
