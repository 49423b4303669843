import type { Deps } from '../deps.js';
import { PermanentError } from '../lib/retry-errors.js';
import { portalEvents, updatePortal, type PortalRow } from '../../db/stores/portals.js';
import { getSetting, putSetting } from '../../db/stores/settings.js';
import {
  planBindings,
  type BindingPlan,
  type BoundEvent,
  type BoundPlacement,
  type CurrentBindings,
  type PlannedCommand,
  type WantedBindings,
} from './binding-plan.js';
import {
  featureOn,
  OFFLINE_CONNECTOR,
  OFFLINE_CONNECTOR_KEY,
  OFFLINE_NOTICE,
  SOURCE_KEYS_FEATURE,
} from './offline-binding.js';

export { OFFLINE_CONNECTOR, OFFLINE_NOTICE } from './offline-binding.js';

/** The app's own lifecycle events, bound on every portal whatever else is chosen. */
export const LIFECYCLE_BINDINGS = ['ONAPPINSTALL', 'ONAPPUPDATE', 'ONAPPUNINSTALL'] as const;

/**
 * Bound while the portal's application token is not known (an installer POST without
 * APPLICATION_TOKEN, then an ONAPPINSTALL lost on its way): `event.test` then has Bitrix24
 * send ONAPPTEST, a delivery that carries the token and can prove it as ONAPPINSTALL does
 * (DOCS:api-reference/events/test-handler.md; CORE:lib/api/event.php `eventTest` fires
 * OnRestAppTest for the calling app only). Unbound at the next sync once the token is known.
 */
export const TOKEN_TEST_EVENT = 'ONAPPTEST';

/**
 * The app's own bindings: its lifecycle, ONOFFLINEEVENT (loss recovery) and the token test.
 * Not an admin's choice: the subscriptions page names them apart, the builder offers none.
 */
export const APP_OWN_EVENTS: readonly string[] = [
  ...LIFECYCLE_BINDINGS,
  'ONOFFLINEEVENT',
  TOKEN_TEST_EVENT,
];

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
  /** Events bound as offline events (the loss-recovery safety net). */
  offline: string[];
  /** Offline bindings the portal refused (they need an administrator's token). */
  offlineFailed: Array<{ name: string; error: string }>;
}

/** The events chosen for a portal: its `events` setting, else B24_EVENTS, else manifest.json. */
export async function chosenEvents(deps: Deps, memberId: string): Promise<string[]> {
  return eventsChosen(deps, await getSetting<unknown>(deps.db, memberId, EVENTS_KEY));
}

/** Settings key of a portal's chosen events (scope: its member_id). */
export const EVENTS_KEY = 'events';

/** chosenEvents from the portal's `events` setting as read (undefined: it has none). */
export function eventsChosen(deps: Pick<Deps, 'config' | 'manifest'>, own: unknown): string[] {
  const list = Array.isArray(own)
    ? own.map(String)
    : (deps.config.b24.events ?? deps.manifest.events);
  return [...new Set(list.map((e) => e.trim().toUpperCase()).filter(Boolean))];
}

/** The URL Bitrix24 posts events to. */
export const eventHandlerUrl = (deps: Deps) =>
  `${deps.config.appUrl}${deps.manifest.handlers.events}`;

/**
 * "Handler already binded", and "Process of binding the handler has already started": the
 * same handler being bound by a parallel request that holds the core's lock (another
 * instance syncing the same portal; b24restdocs api-reference/events/event-bind.md, errors;
 * CORE rest lib/api/event.php bind). Both leave it bound, or about to be: counted as bound,
 * where the second was "refused" and the rules page warned of an event not bound. The next
 * binding audit (event.get) records what the portal holds.
 */
const alreadyBound = (description: string) =>
  /already binded|already bound|binding the handler has already started/i.test(description);

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
  const want = await wantedBindings(deps, portal, opts.userId);
  const current = await currentBindings(deps, portal, want);
  const plan = planBindings(want, current);
  const result = await applyPlan(deps, portal, plan, current.connector);
  await recordSync(deps, portal, want, result, current.connector);
  return result;
}

/** How often a portal without a known application token is asked for an ONAPPTEST. */
export const TOKEN_TEST_EVERY_MS = 5 * 60_000;
/** Portal setting: when the portal was last asked for an ONAPPTEST (ms). */
const TOKEN_TEST_KEY = 'tokenTestAskedAt';

/**
 * Asks the portal for an ONAPPTEST delivery (TOKEN_TEST_EVENT) when its application token is
 * still not known, at most every TOKEN_TEST_EVERY_MS: the binding is made first if the last
 * sync did not leave one. Bitrix24 sends an app no event before BX24.installFinish(), so this
 * is asked once deliveries show that the install finished (a proof job that found nothing to
 * prove, install/lifecycle.ts), not at the install. `fresh`: the portal's row as just read.
 * Says what it did; a refusal or an outage is logged and left for the next time.
 */
export async function askForTokenTest(deps: Deps, fresh: PortalRow): Promise<string> {
  if (
    fresh.application_token_digest !== null ||
    fresh.status !== 'installed' ||
    fresh.auth_mode !== 'oauth'
  ) {
    return 'no test delivery needed';
  }
  // An install the OAuth server has not confirmed is proven by a delivered refresh token,
  // which ONAPPTEST carries as ONAPPINSTALL does (CORE rest classes/general/rest_provider.php:
  // OnAppTest has sendRefreshToken): asked for, it confirms an install whose ONAPPINSTALL
  // was lost, which waited for ever before.
  const now = deps.clock.now().getTime();
  const last = Number(await getSetting<number>(deps.db, fresh.member_id, TOKEN_TEST_KEY)) || 0;
  if (now - last < TOKEN_TEST_EVERY_MS) return 'a test delivery was asked for recently';
  await putSetting(deps.db, fresh.member_id, TOKEN_TEST_KEY, now, new Date(now));
  try {
    if (!portalEvents(fresh).includes(TOKEN_TEST_EVENT)) await syncBindings(deps, fresh);
    await deps.bitrix.call(fresh, 'event.test', {});
  } catch (e) {
    deps.logger.warn(
      { memberId: fresh.member_id, err: (e as Error)?.message },
      'could not ask the portal for an ONAPPTEST delivery; its deliveries stay unverified',
    );
    return 'asking for a test delivery failed';
  }
  deps.logger.info(
    { memberId: fresh.member_id },
    'application token not known: asked the portal for an ONAPPTEST delivery',
  );
  return 'asked the portal for a test delivery (ONAPPTEST)';
}

/** What the portal should have: the lifecycle and chosen events, offline ones, placements. */
async function wantedBindings(
  deps: Deps,
  portal: PortalRow,
  userId: number | undefined,
): Promise<WantedBindings> {
  const chosen = await chosenEvents(deps, portal.member_id);
  const offlineOn = deps.config.b24.offlineEvents;
  return {
    handler: eventHandlerUrl(deps),
    appBase: `${deps.config.appUrl}/`,
    authType: String(userId ?? portal.installed_by_user_id ?? 0),
    events: [
      ...new Set<string>([
        ...LIFECYCLE_BINDINGS,
        ...chosen,
        ...(offlineOn ? [OFFLINE_NOTICE] : []),
        ...(portal.application_token_digest === null ? [TOKEN_TEST_EVENT] : []),
      ]),
    ],
    offline: offlineOn ? chosen.filter((e) => e !== OFFLINE_NOTICE) : [],
    placements: deps.manifest.placements.map((p) => ({
      code: p.code.toUpperCase(),
      handler: `${deps.config.appUrl}${p.handler}`,
      title: p.title,
    })),
    noticeOptions: { minTimeout: deps.config.b24.offlineMinTimeoutSec },
  };
}

/** Our bindings on the portal now, from one batch of event.get and placement.get. */
async function currentBindings(
  deps: Deps,
  portal: PortalRow,
  want: WantedBindings,
): Promise<CurrentBindings> {
  const offlineOn = deps.config.b24.offlineEvents;
  const current = await deps.bitrix.batch(portal, {
    e: ['event.get'],
    p: ['placement.get'],
    ...(offlineOn ? { f: ['feature.get', { CODE: SOURCE_KEYS_FEATURE }] } : {}),
  });
  for (const [k, err] of Object.entries(current.errors)) {
    // A core without feature.get: source keys as before.
    if (k === 'f') continue;
    throw new PermanentError(
      `${k === 'e' ? 'event.get' : 'placement.get'}: ${err.error} ${err.error_description}`,
    );
  }
  const feature = current.result.f as { value?: unknown } | undefined;
  const connector = !feature || featureOn(feature.value) ? OFFLINE_CONNECTOR : '';
  const bound = (current.result.e ?? []) as BoundEvent[];
  const offline = bound.filter((b) => Number(b.offline ?? 0) === 1);
  const noticeStale =
    deps.config.b24.offlineEvents &&
    (await getSetting<number>(deps.db, portal.member_id, NOTICE_TIMEOUT_KEY)) !==
      want.noticeOptions.minTimeout;
  return {
    events: bound.filter((b) => b.handler === want.handler && !Number(b.offline ?? 0)),
    offline: offline.filter((b) => (b.connector_id ?? '') === connector),
    // Bindings with our connector, left from a plan that had source keys, cannot be touched
    // without them (every request with auth_connector is refused) and stay.
    stray: connector ? offline.filter((b) => !b.connector_id) : [],
    connector,
    placements: (current.result.p ?? []) as BoundPlacement[],
    noticeStale,
  };
}

/**
 * Runs the plan in batches of 50. The offline commands go in batches of their own that carry
 * our connector on the batch request.
 */
async function applyPlan(
  deps: Deps,
  portal: PortalRow,
  plan: BindingPlan,
  connector: string,
): Promise<BindingSync> {
  const result: BindingSync = {
    events: [...plan.kept.events],
    placements: [...plan.kept.placements],
    unbound: [],
    failed: [],
    offline: [...plan.kept.offline],
    offlineFailed: [],
  };
  for (const key of [...new Set(['', connector])]) {
    const group = plan.commands.filter((c) => c.connector === key);
    for (let i = 0; i < group.length; i += 50) {
      const chunk = group.slice(i, i + 50);
      const answer = await deps.bitrix.batch(
        portal,
        Object.fromEntries(chunk.map((c, j) => [`c${j}`, c.cmd])),
        { authConnector: key || undefined },
      );
      chunk.forEach((c, j) => recordAnswer(deps, portal, result, c, answer.errors[`c${j}`]));
    }
  }
  return result;
}

/** Notes one command's outcome; "Handler already binded" counts as success. */
function recordAnswer(
  deps: Deps,
  portal: PortalRow,
  result: BindingSync,
  { cmd: [method], name }: PlannedCommand,
  err: { error: string; error_description: string } | undefined,
): void {
  const ok = !err || alreadyBound(err.error_description);
  if (name.startsWith('stray:')) {
    if (!ok)
      deps.logger.warn(
        { memberId: portal.member_id, name, err },
        'stray offline binding not removed',
      );
    return;
  }
  if (name.startsWith('offline:')) {
    const event = name.slice('offline:'.length);
    if (!ok)
      result.offlineFailed.push({ name: event, error: `${err.error}: ${err.error_description}` });
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
}

/**
 * Puts the result in the wanted order, remembers the notice's minTimeout and the bound
 * events on the portal, and logs what the portal refused.
 */
async function recordSync(
  deps: Deps,
  portal: PortalRow,
  want: WantedBindings,
  result: BindingSync,
  connector: string,
): Promise<void> {
  const offlineOn = deps.config.b24.offlineEvents;
  if (offlineOn) {
    // The drain reads the queue of the connector the bindings carry.
    await putSetting(deps.db, portal.member_id, OFFLINE_CONNECTOR_KEY, connector, deps.clock.now());
    if (!connector) {
      deps.logger.info(
        { memberId: portal.member_id },
        "the portal's plan has no source keys (rest_auth_connector): offline events are bound without auth_connector",
      );
    }
  }
  if (offlineOn && result.events.includes(OFFLINE_NOTICE)) {
    await putSetting(
      deps.db,
      portal.member_id,
      NOTICE_TIMEOUT_KEY,
      want.noticeOptions.minTimeout,
      deps.clock.now(),
    );
  }
  // What is bound, as the binding audit (event.get) records it: ONOFFLINEEVENT too. Left
  // out here, `portals` listed it after an install or an audit and not after a re-sync,
  // though it was bound all along (an operator checks it to see loss recovery armed).
  result.events = want.events.filter((e) => result.events.includes(e));
  result.offline = want.offline.filter((e) => result.offline.includes(e));
  result.placements = want.placements
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
}
