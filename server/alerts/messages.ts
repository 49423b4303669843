import type { PauseReason } from '../../db/stores/portals.js';
import type { FailedEvent } from '../../db/stores/alerts.js';
import * as ru from './messages-ru.js';
import {
  DESTINATIONS_NAMED,
  type AlertPhase,
  type OpenDestination,
  type Scope,
  type Text,
} from './types.js';
import { destinationName } from '../lib/destination-name.js';

// Scope and Text live in types.ts, which messages-ru.ts reads too (no import circle).
export type { Scope, Text } from './types.js';

const PREFIX: Record<AlertPhase, string> = {
  firing: 'ALERT',
  reminder: 'REMINDER',
  recovered: 'RECOVERED',
  digest: 'DIGEST',
};

/** `1 event`, `3 events`. */
export const eventCount = (n: number | string) => `${n} event${String(n) === '1' ? '' : 's'}`;

/** `95 s`, `12 min`, `3 h 5 min`. */
export function age(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function compose(phase: AlertPhase, title: string, lines: string[], dashboard: string): Text {
  return {
    subject: `[b24hooks] ${PREFIX[phase]}: ${title}`,
    text: [`b24hooks ${PREFIX[phase]}: ${title}`, '', ...lines, '', `Dashboard: ${dashboard}`].join(
      '\n',
    ),
  };
}

export function backlogText(
  phase: AlertPhase,
  scope: Scope,
  f: { backlog: number; threshold: number; recoverBelow: number; oldestPendingSeconds: number },
  dashboard: string,
): Text {
  if (scope.lang === 'ru') return ru.backlogText(phase, scope, f, dashboard);
  if (phase === 'recovered') {
    return compose(
      phase,
      `backlog on ${scope.label} is back to ${f.backlog}`,
      [
        `The backlog (unprocessed events) on ${scope.label} fell to ${f.backlog}, below ${f.recoverBelow} (80 % of the threshold ${f.threshold}).`,
      ],
      dashboard,
    );
  }
  return compose(
    phase,
    `backlog of ${eventCount(f.backlog)} on ${scope.label}`,
    [
      `Backlog: ${f.backlog} unprocessed ${f.backlog === 1 ? 'event' : 'events'} (received, processing or waiting for verification or a retry) on ${scope.label}; the threshold is ${f.threshold}.`,
      `Oldest pending event: waiting ${age(f.oldestPendingSeconds)}.`,
      ...(phase === 'reminder' ? ['The backlog is still above the threshold.'] : []),
    ],
    dashboard,
  );
}

export function failedDigestText(
  scope: Scope,
  events: readonly FailedEvent[],
  truncated: boolean,
  dashboard: string,
): Text {
  if (scope.lang === 'ru') return ru.failedDigestText(scope, events, truncated, dashboard);
  const byKey = new Map<string, number>();
  for (const e of events) {
    for (const rule of e.rules.length ? e.rules : ['(no rule)']) {
      const k = `${rule} / ${e.event}`;
      byKey.set(k, (byKey.get(k) ?? 0) + 1);
    }
  }
  const counts = [...byKey.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${k}: ${n}`);
  const last = events
    .slice(0, 5)
    .map(
      (e) =>
        `  #${e.id} ${e.event}${e.entityId ? ` ${e.entityType ?? ''} ${e.entityId}` : ''}: ${(e.lastError ?? 'no error recorded').slice(0, 300)}`,
    );
  const n = `${events.length}${truncated ? '+' : ''}`;
  return compose(
    'digest',
    `${eventCount(n)} failed for good on ${scope.label}`,
    [
      `${eventCount(n)} failed for good (all attempts used) on ${scope.label}. By rule / event:`,
      ...counts,
      'Last errors:',
      ...last,
      'Replay them with `b24hooks replay --status failed` once the cause is fixed.',
    ],
    dashboard,
  );
}

export function reauthText(
  phase: AlertPhase,
  scope: Scope,
  dashboard: string,
  pauseReason?: PauseReason | null,
): Text {
  if (scope.lang === 'ru') return ru.reauthText(phase, scope, dashboard, pauseReason);
  if (phase === 'recovered') {
    return compose(
      phase,
      `${scope.label} is authorised again`,
      [`The portal ${scope.label} has working tokens again; paused events are being processed.`],
      dashboard,
    );
  }
  if (pauseReason) {
    return compose(
      phase,
      `${scope.label} is paused (${pauseReason})`,
      [
        pauseReason === 'payment_required'
          ? `Bitrix24 refused the app on ${scope.label}: PAYMENT_REQUIRED (the portal's subscription or plan has ended). Its events are kept and wait.`
          : `The OAuth server refused to refresh the tokens of ${scope.label}: invalid_client (the app removed from the portal, or B24_CLIENT_ID / B24_CLIENT_SECRET changed). Its events are kept and wait.`,
        'The app tries again every 10 minutes and resumes by itself once Bitrix24 accepts it again.',
      ],
      dashboard,
    );
  }
  return compose(
    phase,
    `${scope.label} needs re-authorisation`,
    [
      `The portal ${scope.label} refused the app's tokens (status needs_reauth). Its events are kept and wait.`,
      'An administrator of the portal should open the app once (or reinstall it) to authorise it again.',
    ],
    dashboard,
  );
}

export function driftText(
  phase: AlertPhase,
  scope: Scope,
  missing: readonly string[],
  dashboard: string,
): Text {
  if (scope.lang === 'ru') return ru.driftText(phase, scope, missing, dashboard);
  if (phase === 'recovered') {
    return compose(
      phase,
      `event subscriptions on ${scope.label} are complete again`,
      [`Every expected event is bound on ${scope.label}.`],
      dashboard,
    );
  }
  return compose(
    phase,
    `${missing.length} event subscription${missing.length === 1 ? '' : 's'} missing on ${scope.label}`,
    [
      `Expected events not bound on ${scope.label}: ${missing.join(', ')}.`,
      'Deliveries of these events will not arrive; re-sync the events in the settings page.',
    ],
    dashboard,
  );
}

export function slaText(
  phase: AlertPhase,
  scope: Scope,
  f: { events: number; byRule: Array<{ rule: string; events: number }>; oldestSeconds: number },
  dashboard: string,
): Text {
  if (scope.lang === 'ru') return ru.slaText(phase, scope, f, dashboard);
  if (phase === 'recovered') {
    return compose(
      phase,
      `no event past its SLA on ${scope.label}`,
      [`Every event that passed its rule's SLA on ${scope.label} has been processed.`],
      dashboard,
    );
  }
  return compose(
    phase,
    `SLA breach: ${eventCount(f.events)} past their SLA on ${scope.label}`,
    [
      `${eventCount(f.events)} on ${scope.label} still unprocessed after their rule's slaSeconds:`,
      ...f.byRule.map((r) => `  ${r.rule}: ${r.events}`),
      `The oldest was received ${age(f.oldestSeconds)} ago.`,
    ],
    dashboard,
  );
}

/**
 * Step destinations whose circuit is open: which ones, and how many events wait. `scope` is
 * the portal they belong to (its own http hosts, its REST endpoint: one alert for all of
 * them), or undefined for a destination of the operator's (Telegram API, SMTP, SMS gateway).
 */
export function destinationText(
  phase: AlertPhase,
  list: readonly OpenDestination[],
  dashboard: string,
  scope?: Scope,
): Text {
  if (scope?.lang === 'ru') return ru.destinationText(phase, list, dashboard, scope);
  const one = list.length === 1 ? list[0] : undefined;
  const on = scope ? ` of ${scope.label}` : '';
  if (phase === 'recovered') {
    const what = one ? destinationName(one.destination) : `the destinations${on}`;
    return compose(
      phase,
      `${what} ${one ? 'is' : 'are'} reachable again`,
      [`Steps to ${what} run again; the events that waited for it are being processed.`],
      dashboard,
    );
  }
  const waiting = list.reduce((n, d) => n + d.waitingJobs, 0);
  const lastOf = (d: OpenDestination) =>
    d.lastError ? ` (last: ${d.lastError.replace(/\s+/g, ' ').slice(0, 300)})` : '';
  if (one) {
    return compose(
      phase,
      `${destinationName(one.destination)} is down, ${eventCount(one.waitingJobs)} wait`,
      [
        `${destinationName(one.destination)} failed ${one.failures} times in a row${lastOf(one)}.`,
        `${eventCount(one.waitingJobs)} wait for it without spending attempts; a probe request tries it again after a cool-down.`,
      ],
      dashboard,
    );
  }
  const more = list.length - DESTINATIONS_NAMED;
  return compose(
    phase,
    `${list.length} destinations${on} are down, ${eventCount(waiting)} wait`,
    [
      ...list
        .slice(0, DESTINATIONS_NAMED)
        .map(
          (d) =>
            `  ${destinationName(d.destination)}: failed ${d.failures} times in a row, ${eventCount(d.waitingJobs)} wait${lastOf(d)}`,
        ),
      ...(more > 0 ? [`  and ${more} more`] : []),
      'Their events wait without spending attempts; a probe request tries each again after a cool-down.',
    ],
    dashboard,
  );
}
