import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { startLoopDelayMonitor } from './lib/event-loop-delay.js';

/**
 * Prometheus metrics, one registry per app instance (no global state), names prefixed
 * `b24hooks_`. Gauges that describe the database (backlog, oldest pending) are filled at
 * scrape time by `refreshGauges`, set in deps.ts.
 */
export function createMetrics(
  options: {
    defaultMetrics?: boolean;
    /**
     * Event names that are always their own `event` label: the events the app binds or
     * offers (lifecycle, the subscriptions page, B24_EVENTS or manifest.json).
     */
    knownEvents?: readonly string[];
  } = {},
) {
  const registry = new Registry();
  if (options.defaultMetrics) {
    collectDefaultMetrics({ register: registry, prefix: 'b24hooks_' });
    const loop = startLoopDelayMonitor();
    new Gauge({
      name: 'b24hooks_event_loop_delay_seconds',
      help: 'Main-thread event-loop delay since the previous scrape: how late a timer sampled every 10 ms fired (perf_hooks.monitorEventLoopDelay, the sampling interval taken off), by quantile; quantile 1 is the max',
      labelNames: ['quantile'] as const,
      registers: [registry],
      collect() {
        const d = loop.take();
        for (const [q, v] of [
          ['0.5', d.p50],
          ['0.9', d.p90],
          ['0.99', d.p99],
          ['1', d.max],
        ] as const)
          this.set({ quantile: q }, v / 1000);
      },
    });
  }
  const knownEvents = new Set([...APP_EVENTS, ...(options.knownEvents ?? [])]);
  const boundLabels = new Set<string>();
  const ruleLabels = new Map<string, Set<string>>();
  const m = {
    registry,
    /**
     * The `rule` label of an SLA breach. Rule names are a portal admin's words, and each new
     * one added a series that stayed until the process ended: saving maps of 500 renamed
     * rules with an SLA of a second added 500 series each time. So each portal's first
     * MAX_RULE_LABELS names that breach are their own labels, and the rest count as `other`.
     */
    slaRuleLabel(portal: string, rule: string): string {
      let names = ruleLabels.get(portal);
      if (!names) ruleLabels.set(portal, (names = new Set()));
      if (names.has(rule)) return rule;
      if (names.size >= MAX_RULE_LABELS) return 'other';
      names.add(rule);
      return rule;
    },
    /** Forgets the rule labels of a portal whose series were dropped. */
    forgetRuleLabels(portal: string): void {
      ruleLabels.delete(portal);
    },
    /**
     * The `event` label for an event name. Event names come from deliveries, and a portal
     * that knows its own application token may post any name that looks like one: each new
     * name would add a series to the counters and sixteen to the histogram, without end. So
     * a name is its own label only when the app knows it (`knownEvents`), or when it is one
     * of the delivering portal's bound events (`bound()`, what Bitrix24 accepted in event.bind;
     * at most MAX_EVENT_LABELS of those); any other name is `other`. A first-come cap alone
     * let one portal's made-up names take every slot, and other portals' real events then
     * showed as `other`.
     */
    eventLabel(name: string, bound?: () => readonly string[] | undefined): string {
      if (knownEvents.has(name) || boundLabels.has(name)) return name;
      // Read only here: on the intake's hot path the usual name is known and costs one lookup.
      if (boundLabels.size >= MAX_EVENT_LABELS || !bound?.()?.includes(name)) return 'other';
      boundLabels.add(name);
      return name;
    },
    eventsReceived: new Counter({
      name: 'b24hooks_events_received_total',
      help: 'Event deliveries stored (verified or waiting for verification)',
      labelNames: ['portal', 'event'] as const,
      registers: [registry],
    }),
    eventsRejected: new Counter({
      name: 'b24hooks_events_rejected_total',
      help: 'Event deliveries refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    eventsRejectedByPortal: new Counter({
      name: 'b24hooks_events_rejected_by_portal_total',
      help: 'Deliveries refused for a known portal (wrong token, uninstalled), by portal and event; event names the portal has not bound count as "other"',
      labelNames: ['portal', 'event'] as const,
      registers: [registry],
    }),
    eventsUnverified: new Counter({
      name: 'b24hooks_events_unverified_total',
      help: 'Deliveries stored before the portal application token was known',
      labelNames: ['portal'] as const,
      registers: [registry],
    }),
    eventsDuplicate: new Counter({
      name: 'b24hooks_events_duplicate_total',
      help: 'Identical repeated deliveries, answered 200 and counted, not processed again',
      labelNames: ['portal'] as const,
      registers: [registry],
    }),
    eventsFinished: new Counter({
      name: 'b24hooks_events_finished_total',
      help: 'Events that reached a final status',
      labelNames: ['portal', 'event', 'status'] as const,
      registers: [registry],
    }),
    dbStatementSeconds: new Histogram({
      name: 'b24hooks_db_statement_seconds',
      help: "Time of each SQL statement of the server's main connection (SQLite: time the main thread, and every request, waited for it; PostgreSQL: the query's round trip)",
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    processingSeconds: new Histogram({
      name: 'b24hooks_event_processing_seconds',
      help: 'Time from receipt (or the last replay) to a final status',
      labelNames: ['event'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600],
      registers: [registry],
    }),
    actionRuns: new Counter({
      name: 'b24hooks_action_runs_total',
      help: 'Action steps run, by type and outcome',
      labelNames: ['type', 'outcome'] as const,
      registers: [registry],
    }),
    restCalls: new Counter({
      name: 'b24hooks_rest_calls_total',
      help: 'Bitrix24 REST calls made, by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    rateLimitWaits: new Counter({
      name: 'b24hooks_rest_rate_limit_waits_total',
      help: 'REST calls that waited for the per-portal rate budget',
      registers: [registry],
    }),
    alertsSent: new Counter({
      name: 'b24hooks_alerts_sent_total',
      help: 'Alerts sent, by channel and kind',
      labelNames: ['channel', 'kind'] as const,
      registers: [registry],
    }),
    slaBreaches: new Counter({
      name: 'b24hooks_sla_breaches_total',
      help: 'Events that passed a rule SLA (slaSeconds), counted once per event and rule when detected',
      labelNames: ['portal', 'rule'] as const,
      registers: [registry],
    }),
    backlog: new Gauge({
      name: 'b24hooks_backlog',
      help: 'Events received but not yet processed (received, processing, unverified)',
      labelNames: ['portal'] as const,
      registers: [registry],
    }),
    storageWriteFailure: new Gauge({
      name: 'b24hooks_storage_write_failure_timestamp_seconds',
      help: 'Unix time of the last write the database refused (locked beyond the busy timeout, disk full); 0 once a write succeeds again. /healthz answers 503 meanwhile',
      registers: [registry],
    }),
    oldestPendingSeconds: new Gauge({
      name: 'b24hooks_oldest_pending_seconds',
      help: 'Age of the oldest unprocessed event',
      registers: [registry],
    }),
    destinationWaiting: new Gauge({
      name: 'b24hooks_destination_open_waiting_jobs',
      help: 'Step destinations whose circuit is open (one series each), valued by the jobs waiting for them',
      labelNames: ['destination'] as const,
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The app's own events, always labels: its lifecycle (bound on every portal, and still
 * delivered once the portal's bindings are cleared by an uninstall) and the offline-queue
 * notice (bound by the app itself, not recorded among the portal's chosen events).
 */
const APP_EVENTS = ['ONAPPINSTALL', 'ONAPPUPDATE', 'ONAPPUNINSTALL', 'ONOFFLINEEVENT'];

/**
 * Distinct event names, beyond the app's known ones, kept as `event` label values because a
 * portal has them bound; Bitrix24 has a few hundred events and a portal binds a handful, so a
 * real deployment stays far below it.
 */
export const MAX_EVENT_LABELS = 200;

/** Distinct `rule` label values of b24hooks_sla_breaches_total per portal; more are `other`. */
export const MAX_RULE_LABELS = 50;

/**
 * Whether the database takes writes, as the last write attempts showed: a refused write
 * (locked beyond the busy timeout, disk full) marks it failing, a committed one writable.
 * Kept in a gauge, so /metrics shows it and /healthz reads it. Real time, not the app clock.
 */
type Gauges = Pick<Metrics, 'storageWriteFailure'>;

/** How long a refused write keeps /healthz at 503 when nothing has been written since. */
export const STORAGE_FAILURE_WINDOW_MS = 30_000;

export function markStorageFailing(m: Gauges): void {
  m.storageWriteFailure.set(Date.now() / 1000);
}

export function markStorageWritable(m: Gauges): void {
  m.storageWriteFailure.set(0);
}

/**
 * The time of the last refused write if no write succeeded since and it is recent, else
 * undefined. Without writes there is no fresh evidence, so an old failure stops counting.
 */
export async function storageFailingSince(m: Gauges): Promise<Date | undefined> {
  const value = (await m.storageWriteFailure.get()).values[0]?.value ?? 0;
  if (value <= 0 || Date.now() - value * 1000 > STORAGE_FAILURE_WINDOW_MS) return undefined;
  return new Date(value * 1000);
}

/**
 * Drops every series labelled with a portal erased for good (CLEAN uninstall): its member_id
 * must not stay in `/metrics` until the next restart.
 */
export async function forgetPortalSeries(m: Metrics, memberId: string): Promise<void> {
  const labelled = [
    m.eventsReceived,
    m.eventsRejectedByPortal,
    m.eventsUnverified,
    m.eventsDuplicate,
    m.eventsFinished,
    m.slaBreaches,
    m.backlog,
  ] as Array<Counter<string> | Gauge<string>>;
  for (const metric of labelled) {
    for (const { labels } of (await metric.get()).values) {
      if (labels.portal === memberId) metric.remove(labels as Record<string, string>);
    }
  }
  m.forgetRuleLabels(memberId);
}
