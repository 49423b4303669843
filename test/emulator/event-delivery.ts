import { buildEventAuth, buildEventBody, type EventAuthTokens } from './event-body.js';
import { postOnce } from './http-util.js';
import { EVENTS_WITH_REFRESH_TOKEN, EVENTS_WITHOUT_AUTH } from './known-names.js';
import { queueOffline } from './offline-queue.js';
import type { PhpValue } from './php-form.js';
import type { PortalState } from './state.js';
import type { DeliveryRecord, EventBinding, TriggerOptions } from './types.js';

/**
 * Third-party nginx logs show this agent for Bitrix24's queue servers (a guess: no Bitrix24 doc
 * names it).
 */
export const DELIVERY_USER_AGENT = 'Bitrix24 Webhook Engine';

interface Target {
  handler: string;
  eventHandlerId: number;
  /** User whose token goes into `auth`; 0 = the triggering user. */
  authType: number;
  applicationToken: string;
  /** Outgoing webhooks never get tokens. */
  tokensAllowed: boolean;
}

export interface FireOptions {
  /** Deliver to these bindings instead of the current ones (a snapshot taken earlier). */
  bindings?: EventBinding[];
  /**
   * Set when the app's own REST call made the change: that call's `auth_connector` ('' when
   * it had none), for the offline loop break. Undefined for a change made by a user.
   */
  authConnector?: string;
}

/** FireOptions of a change made by a REST call: the app's calls carry their connector. */
export const restOrigin = (call: { via: string; authConnector: string }): FireOptions =>
  call.via === 'oauth' ? { authConnector: call.authConnector } : {};

/** `{userId}` / `{robot}` → the triggering user id, null for a robot. Default: user 1. */
export function triggerUser(opts: TriggerOptions | undefined): number | null {
  if (opts?.robot) return null;
  if (opts?.userId === null) return null;
  return opts?.userId ?? 1;
}

function targetsFor(portal: PortalState, event: string, opts: FireOptions): Target[] {
  const targets: Target[] = [];
  // Until BX24.installFinish() the app's handlers get no events at all (installation-finish.md),
  // nor while its payment has expired (appPaymentExpired).
  if (portal.installState === 'installed' && !appPaymentExpired(portal)) {
    for (const b of opts.bindings ?? portal.bindings) {
      if (b.event !== event || b.eventType !== 'online') continue;
      targets.push({
        handler: b.handler,
        eventHandlerId: b.id,
        authType: b.authType,
        applicationToken: portal.applicationToken,
        tokensAllowed: true,
      });
    }
  }
  for (const w of portal.outgoingWebhooks) {
    if (!w.events.includes(event)) continue;
    targets.push({
      handler: w.handler,
      eventHandlerId: w.id,
      authType: 0,
      applicationToken: w.applicationToken,
      tokensAllowed: false,
    });
  }
  return targets;
}

/**
 * The app's subscription has ended (`subscriptionEnded`, the portal refusing its calls with
 * PAYMENT_REQUIRED): the core skips every handler of an app whose status says PAYMENT_EXPIRED,
 * online and offline alike, so nothing is delivered and no offline record is kept (CORE rest
 * lib/event/callback.php `__callStatic`; lib/app.php `getAppStatusInfo`: an app on the Market
 * subscription, status S, without an available subscription). Outgoing webhooks are not
 * apps and still get theirs.
 */
function appPaymentExpired(portal: PortalState): boolean {
  return portal.subscriptionEnded;
}

/**
 * Delivers one event to every matching handler, once each. Never retried: Bitrix24 logs a
 * failed delivery and drops it (DOCS:api-reference/events/index.md "No retries").
 */
export async function fireEvent(
  portal: PortalState,
  eventName: string,
  data: PhpValue,
  userId: number | null,
  opts: FireOptions = {},
): Promise<DeliveryRecord[]> {
  const event = eventName.toUpperCase();
  const ctx = portal.ctx;
  const ts = Math.floor(ctx.now() / 1000);
  const targets = targetsFor(portal, event, opts);
  // Offline records are kept whether or not any handler answers: that is their point.
  if (
    !opts.bindings &&
    !appPaymentExpired(portal) &&
    queueOffline(portal, event, data, userId, opts.authConnector)
  ) {
    fireInBackground(portal, 'ONOFFLINEEVENT', {}, userId ?? portal.installerUserId);
  }
  return Promise.all(
    targets.map(async (target) => {
      // The core puts tokens in only when a user is behind the event (sender.php `call()`):
      // the binding's auth_type user, else the user who triggered it.
      const effectiveUser = target.authType > 0 ? target.authType : userId;
      let tokens: EventAuthTokens | null = null;
      if (target.tokensAllowed && effectiveUser !== null && !EVENTS_WITHOUT_AUTH.has(event)) {
        const issued = ctx.tokens.issue(portal.memberId, effectiveUser);
        tokens = {
          accessToken: issued.accessToken,
          expires: issued.expires,
          expiresIn: issued.expiresIn,
          userId: effectiveUser,
        };
        if (EVENTS_WITH_REFRESH_TOKEN.has(event)) tokens.refreshToken = issued.refreshToken;
      }
      const auth = buildEventAuth({
        domain: portal.domain,
        clientEndpoint: portal.clientEndpoint,
        serverEndpoint: ctx.serverEndpoint,
        memberId: portal.memberId,
        applicationToken: target.applicationToken,
        scope: portal.scope,
        status: portal.status,
        tokens,
      });
      const body = buildEventBody({
        event,
        eventHandlerId: target.eventHandlerId,
        data,
        ts,
        auth,
      });
      return deliver(portal, event, target, body);
    }),
  );
}

async function deliver(
  portal: PortalState,
  event: string,
  target: Target,
  body: string,
): Promise<DeliveryRecord> {
  const at = portal.ctx.now();
  const started = performance.now();
  const record: DeliveryRecord = {
    event,
    handler: target.handler,
    eventHandlerId: target.eventHandlerId,
    status: 0,
    body,
    at,
    durationMs: 0,
  };
  try {
    const res = await postOnce({
      url: target.handler,
      body,
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        'User-Agent': DELIVERY_USER_AGENT,
        Accept: '*/*',
      },
      timeoutMs: portal.deliveryTimeoutMs,
      signal: portal.aborter.signal,
    });
    record.status = res.status;
    record.responseBody = res.body;
  } catch (err) {
    record.error = err instanceof Error ? err.message : String(err);
  }
  record.durationMs = Math.round((performance.now() - started) * 10) / 10;
  portal.deliveries.push(record);
  return record;
}

/**
 * Fires without making the caller wait, as when a REST call changes a deal: the portal
 * answers the call and its queue delivers later. `whenIdle()` waits for these.
 */
export function fireInBackground(
  portal: PortalState,
  event: string,
  data: PhpValue,
  userId: number | null,
  opts: FireOptions = {},
): void {
  const p = fireEvent(portal, event, data, userId, opts).catch(() => []);
  portal.pending.add(p);
  void p.finally(() => portal.pending.delete(p));
}

export async function whenIdle(portal: PortalState): Promise<void> {
  while (portal.pending.size > 0) await Promise.allSettled([...portal.pending]);
}
