import type { Deps } from '../deps.js';
import { PermanentError } from '../lib/retry-errors.js';
import { updatePortal, type PortalRow } from '../../db/stores/portals.js';
import { getSetting, putSetting } from '../../db/stores/settings.js';
import type { BatchCommand } from '../bitrix/rest.js';

/** The app's own lifecycle events, bound on every portal whatever else is chosen. */
export const LIFECYCLE_BINDINGS = ['ONAPPINSTALL', 'ONAPPUPDATE', 'ONAPPUNINSTALL'] as const;

/**
 * Our `auth_connector` for offline bindings. Bitrix24 takes it from the top-level request's
 * auth data only (protocol §3.1): every offline bind, unbind and `event.offline.*` call sends
 * it on the request itself (a direct call, or a batch that carries it), never inside a
 * sub-command. REST writes made with it would not create offline records for our binding.
 */
export const OFFLINE_CONNECTOR = 'b24hooks';
/**
 * Bound online so the portal tells us when offline records wait (empty `data`), at most once
 * per `options[minTimeout]` seconds (B24_OFFLINE_MIN_TIMEOUT): each notice costs REST calls.
 */
export const OFFLINE_NOTICE = 'ONOFFLINEEVENT';
/** Portal setting: the minTimeout ONOFFLINEEVENT was last bound with (event.get omits it). */
const NOTICE_TIMEOUT_KEY = 'offlineNoticeMinTimeout';

export interface BindingSync {
  /** Events bound with our handler after the sync (lifecycle events included). */
  events: string[];
  /** Placement codes bound to our handlers after the sync. */
  placements: string[];
  /** What was removed because it is no longer wanted (or had another auth_type). */
  unbound: string[];
  /** What the portal refused, with its reason. */
  failed: Array<{ name: string; error: string }>;
  /** Events bound as offline events (the loss-recovery safety net, issue 8). */
  offline: string[];
  /** Offline bindings the portal refused (they need an administrator's token). */
  offlineFailed: Array<{ name: string; error: string }>;
}

/** The events chosen for a portal: its `events` setting, else B24_EVENTS, else manifest.json. */
export async function chosenEvents(deps: Deps, memberId: string): Promise<string[]> {
  const own = await getSetting<unknown>(deps.db, memberId, 'events');
  const list = Array.isArray(own)
    ? own.map(String)
    : (deps.config.b24.events ?? deps.manifest.events);
  return [...new Set(list.map((e) => e.trim().toUpperCase()).filter(Boolean))];
}

/** The URL Bitrix24 posts events to. */
export const eventHandlerUrl = (deps: Deps) =>
  `${deps.config.appUrl}${deps.manifest.handlers.events}`;

interface BoundEvent {
  event: string;
  handler?: string;
  auth_type?: string | number;
  offline?: string | number;
  connector_id?: string;
}
interface BoundPlacement {
  placement: string;
  handler: string;
}

const alreadyBound = (description: string) => /already binded|already bound/i.test(description);

/**
 * Makes the portal's subscriptions what we want, and is safe to run any number of times
 * (install, reinstall, ONAPPUPDATE, the settings page's re-sync): reads event.get and
 * placement.get first, unbinds our own handler's bindings that are no longer wanted or carry
 * another auth_type (one event bound twice would be delivered twice), then binds what is
 * missing; "Handler already binded" counts as success. Only bindings of our own handler URLs
 * are ever removed. Records the bound events on the portal.
 */
export async function syncBindings(
  deps: Deps,
  portal: PortalRow,
  opts: { userId?: number } = {},
): Promise<BindingSync> {
  if (portal.auth_mode !== 'oauth') {
    throw new PermanentError(
      'event.bind needs the OAuth app; a webhook portal subscribes in its outgoing webhook form',
    );
  }
  const rest = deps.bitrix;
  const handler = eventHandlerUrl(deps);
  const appBase = `${deps.config.appUrl}/`;
  const authType = String(opts.userId ?? portal.installed_by_user_id ?? 0);
  const chosen = await chosenEvents(deps, portal.member_id);
  const offlineOn = deps.config.b24.offlineEvents;
  const wanted = [
    ...new Set<string>([...LIFECYCLE_BINDINGS, ...chosen, ...(offlineOn ? [OFFLINE_NOTICE] : [])]),
  ];
  const wantedOffline = offlineOn ? chosen.filter((e) => e !== OFFLINE_NOTICE) : [];
  const wantedPlacements = deps.manifest.placements.map((p) => ({
    code: p.code.toUpperCase(),
    handler: `${deps.config.appUrl}${p.handler}`,
    title: p.title,
  }));

  const current = await rest.batch(portal, { e: ['event.get'], p: ['placement.get'] });
  for (const [k, err] of Object.entries(current.errors)) {
    throw new PermanentError(
      `${k === 'e' ? 'event.get' : 'placement.get'}: ${err.error} ${err.error_description}`,
    );
  }
  const boundEvents = ((current.result.e ?? []) as BoundEvent[]).filter(
    (b) => b.handler === handler && !Number(b.offline ?? 0),
  );
  // Ours carry our connector; an offline binding with connector '' can only be ours too
  // (event.get lists this app's bindings only) and is a leftover of binding inside a batch,
  // where the connector was lost: it feeds a queue nobody reads, so it goes.
  const offlineBindings = ((current.result.e ?? []) as BoundEvent[]).filter(
    (b) => Number(b.offline ?? 0) === 1,
  );
  const boundOffline = offlineBindings.filter((b) => b.connector_id === OFFLINE_CONNECTOR);
  const strayOffline = offlineBindings.filter((b) => !b.connector_id);
  const boundPlacements = (current.result.p ?? []) as BoundPlacement[];
  const noticeOptions = { minTimeout: deps.config.b24.offlineMinTimeoutSec };
  const noticeStale =
    offlineOn &&
    (await getSetting<number>(deps.db, portal.member_id, NOTICE_TIMEOUT_KEY)) !==
      noticeOptions.minTimeout;

  /** Commands by the `auth_connector` of the request that must carry them ('' = none). */
  const cmds: Array<[BatchCommand, string, string]> = [];
  const kept = new Set<string>();
  for (const b of boundEvents) {
    const name = String(b.event).toUpperCase();
    // event.get does not report options: a notice bound with another minTimeout is redone.
    const stale = name === OFFLINE_NOTICE && noticeStale;
    if (
      wanted.includes(name) &&
      String(b.auth_type ?? '0') === authType &&
      !kept.has(name) &&
      !stale
    ) {
      kept.add(name);
      continue;
    }
    cmds.push([
      ['event.unbind', { event: name, handler, auth_type: String(b.auth_type ?? '0') }],
      name,
      '',
    ]);
  }
  for (const name of wanted) {
    if (kept.has(name)) continue;
    // ONOFFLINEEVENT declares minTimeout as its only option (add_auth is not one there).
    const options = name === OFFLINE_NOTICE ? noticeOptions : { add_auth: 'Y' };
    cmds.push([['event.bind', { event: name, handler, auth_type: authType, options }], name, '']);
  }
  // Offline bindings: one per event, ours told apart by the connector (never duplicated).
  const offlineKept = new Set<string>();
  for (const b of boundOffline) {
    const name = String(b.event).toUpperCase();
    if (wantedOffline.includes(name) && !offlineKept.has(name)) {
      offlineKept.add(name);
      continue;
    }
    cmds.push([
      ['event.unbind', { event: name, event_type: 'offline' }],
      `offline:${name}`,
      OFFLINE_CONNECTOR,
    ]);
  }
  for (const b of strayOffline) {
    const name = String(b.event).toUpperCase();
    cmds.push([['event.unbind', { event: name, event_type: 'offline' }], `stray:${name}`, '']);
  }
  for (const name of wantedOffline) {
    if (offlineKept.has(name)) continue;
    cmds.push([
      ['event.bind', { event: name, event_type: 'offline' }],
      `offline:${name}`,
      OFFLINE_CONNECTOR,
    ]);
  }
  const placementsKept = new Set<string>();
  for (const p of boundPlacements) {
    const code = String(p.placement).toUpperCase();
    if (!String(p.handler).startsWith(appBase)) continue;
    if (wantedPlacements.some((w) => w.code === code && w.handler === p.handler)) {
      placementsKept.add(code);
      continue;
    }
    cmds.push([['placement.unbind', { PLACEMENT: code, HANDLER: p.handler }], code, '']);
  }
  for (const w of wantedPlacements) {
    if (placementsKept.has(w.code)) continue;
    cmds.push([
      ['placement.bind', { PLACEMENT: w.code, HANDLER: w.handler, TITLE: w.title }],
      w.code,
      '',
    ]);
  }

  const result: BindingSync = {
    events: [...kept],
    placements: [...placementsKept],
    unbound: [],
    failed: [],
    offline: [...offlineKept],
    offlineFailed: [],
  };
  // Unbinds come first in each list, and a batch runs its commands in order. The offline
  // commands go in batches of their own that carry our connector on the batch request.
  for (const connector of ['', OFFLINE_CONNECTOR]) {
    const group = cmds.filter(([, , c]) => c === connector);
    for (let i = 0; i < group.length; i += 50) {
      const chunk = group.slice(i, i + 50);
      const answer = await rest.batch(
        portal,
        Object.fromEntries(chunk.map(([cmd], j) => [`c${j}`, cmd])),
        { authConnector: connector || undefined },
      );
      chunk.forEach(([[method], name], j) => {
        const err = answer.errors[`c${j}`];
        const ok = !err || alreadyBound(err.error_description);
        if (name.startsWith('stray:')) {
          if (!ok)
            deps.logger.warn(
              { memberId: portal.member_id, name, err },
              'stray offline binding not removed',
            );
          return;
        }
        const offline = name.startsWith('offline:');
        if (offline) {
          const event = name.slice('offline:'.length);
          if (!ok)
            result.offlineFailed.push({
              name: event,
              error: `${err.error}: ${err.error_description}`,
            });
          else if (method === 'event.bind') result.offline.push(event);
          return;
        }
        if (!ok) {
          result.failed.push({ name, error: `${err.error || 'ERROR'}: ${err.error_description}` });
          return;
        }
        if (method.endsWith('.unbind')) result.unbound.push(name);
        else if (method === 'event.bind') result.events.push(name);
        else result.placements.push(name);
      });
    }
  }
  if (offlineOn && result.events.includes(OFFLINE_NOTICE)) {
    await putSetting(
      deps.db,
      portal.member_id,
      NOTICE_TIMEOUT_KEY,
      noticeOptions.minTimeout,
      deps.clock.now(),
    );
  }
  // ONOFFLINEEVENT is bookkeeping of the safety net, not a chosen event.
  result.events = wanted.filter((e) => e !== OFFLINE_NOTICE && result.events.includes(e));
  result.offline = wantedOffline.filter((e) => result.offline.includes(e));
  result.placements = wantedPlacements
    .map((w) => w.code)
    .filter((c) => result.placements.includes(c));
  await updatePortal(deps.db, portal.id, {
    events_bound: JSON.stringify(result.events),
    updated_at: deps.clock.now().getTime(),
  });
  deps.portals.invalidate(portal.member_id);
  if (result.offlineFailed.length) {
    deps.logger.info(
      { memberId: portal.member_id, failed: result.offlineFailed },
      'offline events not bound: loss recovery relies on the downtime sweep',
    );
  }
  if (result.failed.length) {
    deps.logger.warn(
      { memberId: portal.member_id, failed: result.failed },
      'some bindings were refused',
    );
  }
  return result;
}
