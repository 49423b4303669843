import type { BatchCommand } from '../bitrix/types.js';
import { OFFLINE_NOTICE } from './offline-binding.js';

/** An entry of `event.get`: online (`handler`, `auth_type`) or offline (`connector_id`). */
export interface BoundEvent {
  event: string;
  handler?: string;
  auth_type?: string | number;
  offline?: string | number;
  connector_id?: string;
}

/** An entry of `placement.get`. */
export interface BoundPlacement {
  placement: string;
  handler: string;
}

/** What the portal should have: our handlers, with what is chosen for it. */
export interface WantedBindings {
  /** The URL Bitrix24 posts events to. */
  handler: string;
  /** Placements whose handler starts with it are ours. */
  appBase: string;
  /** The user whose token comes with the events (`0`: the one who caused it). */
  authType: string;
  /** Online events: the lifecycle ones, the chosen ones, ONOFFLINEEVENT with offline events on. */
  events: string[];
  /** Events bound offline (the loss-recovery safety net); empty with offline events off. */
  offline: string[];
  placements: Array<{ code: string; handler: string; title: string }>;
  /** ONOFFLINEEVENT's only option. */
  noticeOptions: { minTimeout: number };
}

/** What the portal has now (event.get, placement.get). */
export interface CurrentBindings {
  /** Online bindings of our event handler. */
  events: BoundEvent[];
  /** Offline bindings with our connector. */
  offline: BoundEvent[];
  /**
   * Offline bindings with connector '' while ours is OFFLINE_CONNECTOR: event.get lists this
   * app's bindings only, so these are ours too, leftovers of binding inside a batch (where
   * the connector was lost).
   */
  stray: BoundEvent[];
  /**
   * The `auth_connector` offline bindings are made with: OFFLINE_CONNECTOR, or '' where the
   * portal's plan has no source keys (offline-binding.ts, SOURCE_KEYS_FEATURE).
   */
  connector: string;
  placements: BoundPlacement[];
  /** ONOFFLINEEVENT was last bound with another minTimeout (event.get does not report it). */
  noticeStale: boolean;
}

/** One command, named for the result, and the `auth_connector` its request must carry. */
export interface PlannedCommand {
  cmd: BatchCommand;
  /** The event or placement code; `offline:<event>` and `stray:<event>` for offline ones. */
  name: string;
  /** '' = none. */
  connector: string;
}

export interface BindingPlan {
  /** Unbinds first in each kind; a batch runs its commands in order. */
  commands: PlannedCommand[];
  /** What is bound already as wanted and stays. */
  kept: { events: Set<string>; offline: Set<string>; placements: Set<string> };
}

/**
 * The commands that turn the current bindings into the wanted ones: our bindings that are
 * no longer wanted, or carry another auth_type, are unbound (one event bound twice would be
 * delivered twice); what is missing is bound. Only our own handlers' bindings are touched.
 */
export function planBindings(want: WantedBindings, current: CurrentBindings): BindingPlan {
  const commands: PlannedCommand[] = [];
  const events = planOnline(want, current, commands);
  const offline = planOffline(want, current, commands);
  const placements = planPlacements(want, current, commands);
  return { commands, kept: { events, offline, placements } };
}

function planOnline(
  want: WantedBindings,
  current: CurrentBindings,
  commands: PlannedCommand[],
): Set<string> {
  const { handler, authType } = want;
  const kept = new Set<string>();
  for (const b of current.events) {
    const name = String(b.event).toUpperCase();
    // event.get does not report options: a notice bound with another minTimeout is redone.
    const stale = name === OFFLINE_NOTICE && current.noticeStale;
    if (
      want.events.includes(name) &&
      String(b.auth_type ?? '0') === authType &&
      !kept.has(name) &&
      !stale
    ) {
      kept.add(name);
      continue;
    }
    const auth_type = String(b.auth_type ?? '0');
    commands.push({
      cmd: ['event.unbind', { event: name, handler, auth_type }],
      name,
      connector: '',
    });
  }
  for (const name of want.events) {
    if (kept.has(name)) continue;
    // ONOFFLINEEVENT declares minTimeout as its only option (add_auth is not one there).
    const options = name === OFFLINE_NOTICE ? want.noticeOptions : { add_auth: 'Y' };
    commands.push({
      cmd: ['event.bind', { event: name, handler, auth_type: authType, options }],
      name,
      connector: '',
    });
  }
  return kept;
}

/** Offline bindings: one per event, ours told apart by the connector (never duplicated). */
function planOffline(
  want: WantedBindings,
  current: CurrentBindings,
  commands: PlannedCommand[],
): Set<string> {
  const kept = new Set<string>();
  for (const b of current.offline) {
    const name = String(b.event).toUpperCase();
    if (want.offline.includes(name) && !kept.has(name)) {
      kept.add(name);
      continue;
    }
    commands.push({
      cmd: ['event.unbind', { event: name, event_type: 'offline' }],
      name: `offline:${name}`,
      connector: current.connector,
    });
  }
  // A stray binding feeds a queue nobody reads, so it goes.
  for (const b of current.stray) {
    const name = String(b.event).toUpperCase();
    commands.push({
      cmd: ['event.unbind', { event: name, event_type: 'offline' }],
      name: `stray:${name}`,
      connector: '',
    });
  }
  for (const name of want.offline) {
    if (kept.has(name)) continue;
    commands.push({
      cmd: ['event.bind', { event: name, event_type: 'offline' }],
      name: `offline:${name}`,
      connector: current.connector,
    });
  }
  return kept;
}

function planPlacements(
  want: WantedBindings,
  current: CurrentBindings,
  commands: PlannedCommand[],
): Set<string> {
  const kept = new Set<string>();
  for (const p of current.placements) {
    const code = String(p.placement).toUpperCase();
    if (!String(p.handler).startsWith(want.appBase)) continue;
    if (want.placements.some((w) => w.code === code && w.handler === p.handler)) {
      kept.add(code);
      continue;
    }
    commands.push({
      cmd: ['placement.unbind', { PLACEMENT: code, HANDLER: p.handler }],
      name: code,
      connector: '',
    });
  }
  for (const w of want.placements) {
    if (kept.has(w.code)) continue;
    commands.push({
      cmd: ['placement.bind', { PLACEMENT: w.code, HANDLER: w.handler, TITLE: w.title }],
      name: w.code,
      connector: '',
    });
  }
  return kept;
}
