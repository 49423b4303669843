import { fireInBackground, restOrigin } from './event-delivery.js';
import { isRecord } from './http-util.js';
import type { PhpValue } from './php-form.js';
import { isKnownEvent, KNOWN_PLACEMENTS, scopeOfEvent } from './known-names.js';
import {
  accessDenied,
  param,
  paramString,
  RestError,
  wrongAuthType,
  type CallContext,
  type MethodHandler,
} from './rest-error.js';
import type { EventBinding } from './types.js';

/**
 * event.* and placement.* as described in DOCS:api-reference/events/event-bind.md and
 * DOCS:api-reference/widgets/placement-bind.md. Both need app (OAuth) context; placement.* also
 * needs an admin.
 */

function requireApp(call: CallContext): void {
  if (call.via !== 'oauth') throw wrongAuthType();
}

function requireAdmin(call: CallContext): void {
  requireApp(call);
  if (!call.isAdmin)
    throw accessDenied('Access denied! Application management permission required');
}

/**
 * Handlers must be http(s) with a host containing a dot after its first character
 * (CORE:lib/handlerhelper.php `checkCallback`: `mb_strpos($callbackData['host'], '.') > 0`,
 * else ERROR_WRONG_HANDLER_URL). `localhost` is accepted as well, which Bitrix24 does not: the
 * browser tests serve the app there, another site than the portal on 127.0.0.1. The app warns
 * at start of an APP_URL that a portal would refuse (server/config/warnings.ts).
 */
function checkHandler(handler: string): void {
  let url: URL;
  try {
    url = new URL(handler);
  } catch {
    throw new RestError(400, 'ERROR_WRONG_HANDLER_URL', 'Wrong handler URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RestError(400, 'ERROR_UNSUPPORTED_PROTOCOL', 'Unsupported handler protocol');
  }
  if (!url.hostname.includes('.') && url.hostname !== 'localhost') {
    throw new RestError(400, 'ERROR_WRONG_HANDLER_URL', 'Wrong handler URL');
  }
}

/**
 * The event named, upper-cased. `event.bind` searches only the token's scopes plus the global
 * one, so an event outside them is as unknown as a misspelt one: ERROR_EVENT_NOT_FOUND
 * (CORE:lib/api/event.php `eventBind`; DOCS:api-reference/events/event-bind.md).
 */
function eventName(params: Record<string, unknown>, call?: CallContext): string {
  const name = paramString(params, 'event').toUpperCase();
  const scope = scopeOfEvent(name);
  if (!isKnownEvent(name) || (call && scope && !call.scopes.has(scope))) {
    throw new RestError(400, 'ERROR_EVENT_NOT_FOUND', 'Event not found');
  }
  return name;
}

/**
 * Options an event declares (`allowOptions` in its description); anything else is dropped
 * silently, and an `int` option is cast (CORE:lib/api/event.php `eventBind`: `foreach
 * ($eventInfo[3]['allowOptions'] as $code => $type)` copies only declared codes into
 * `OPTIONS`). In the core, only ONOFFLINEEVENT declares one, `minTimeout`
 * (`onRestServiceBuildDescription`); DOCS:api-reference/events/event-bind.md names no other.
 * So the contract's `options[add_auth]=Y` is accepted and kept by no event.
 */
function allowedOptions(event: string, given: unknown): Record<string, unknown> {
  const options = isRecord(given) ? given : {};
  if (event !== 'ONOFFLINEEVENT') return {};
  const raw = param(options, 'minTimeout');
  return raw === undefined ? {} : { minTimeout: Math.trunc(Number(raw)) || 0 };
}

function authTypeOf(params: Record<string, unknown>): number | undefined {
  const raw = param(params, 'auth_type');
  if (raw === undefined || raw === null || raw === '') return undefined;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

const eventBind: MethodHandler = (params, call, portal) => {
  requireApp(call);
  const event = eventName(params, call);
  const offline = paramString(params, 'event_type').toLowerCase() === 'offline';
  const authType = authTypeOf(params) ?? 0;
  if (offline && !call.isAdmin) {
    throw accessDenied(
      'Access denied! Offline events binding requires administrator access rights',
    );
  }
  if (authType !== 0 && authType !== call.userId && !call.isAdmin) {
    throw accessDenied(
      'Access denied! Event binding with AUTH_TYPE requires administrator access rights',
    );
  }
  const handler = offline ? '' : paramString(params, 'handler');
  if (!offline) checkHandler(handler);
  // ONOFFLINEEVENT is declared `disableOffline` (CORE:lib/api/event.php).
  if (offline && event === 'ONOFFLINEEVENT') {
    throw new RestError(
      400,
      'ERROR_ARGUMENT',
      'Offline event cannot be registered for this event.',
    );
  }
  // From the request's auth data, never from the method's parameters (see CallContext).
  const connectorId = call.authConnector;
  // Unique on (app, event, handler, user, connector): CORE lib/event.php checkUniq.
  const duplicate = portal.bindings.some(
    (b) =>
      b.event === event &&
      b.handler === handler &&
      b.authType === authType &&
      b.connectorId === connectorId &&
      (b.eventType === 'offline') === offline,
  );
  if (duplicate) {
    throw new RestError(400, 'ERROR_CORE', 'Unable to set event handler: Handler already binded');
  }
  portal.bindings.push({
    id: portal.nextId(),
    event,
    handler,
    authType,
    eventType: offline ? 'offline' : 'online',
    connectorId,
    options: allowedOptions(event, param(params, 'options')),
    boundBy: call.userId,
  });
  return { result: true };
};

/** A non-admin sees and removes only bindings made for them. */
const visibleTo = (call: CallContext, b: EventBinding): boolean =>
  call.isAdmin || b.authType === call.userId || (b.authType === 0 && b.boundBy === call.userId);

/**
 * CORE:lib/api/event.php `eventUnbind`: the event name is only required, never looked up (an
 * event the portal no longer knows is unbound all the same), and an online unbind requires a
 * handler (ArgumentNullException); the bindings are then filtered, and counted.
 */
const eventUnbind: MethodHandler = (params, call, portal) => {
  requireApp(call);
  const event = paramString(params, 'event').toUpperCase();
  if (event === '') {
    throw new RestError(400, 'ERROR_ARGUMENT', "Argument 'EVENT' is null or empty", 'EVENT');
  }
  const offline = paramString(params, 'event_type').toLowerCase() === 'offline';
  const handler = paramString(params, 'handler');
  if (!offline && handler === '') {
    throw new RestError(400, 'ERROR_ARGUMENT', "Argument 'HANDLER' is null or empty", 'HANDLER');
  }
  const authType = authTypeOf(params);
  if (offline && !call.isAdmin) {
    throw accessDenied(
      'Access denied! Offline events unbinding requires administrator access rights',
    );
  }
  if (authType !== undefined && authType !== 0 && authType !== call.userId && !call.isAdmin) {
    throw accessDenied(
      'Access denied! Event unbinding with AUTH_TYPE requires administrator access rights',
    );
  }
  // Offline bindings are matched on the connector of the request's auth data
  // (CORE:lib/api/event.php `eventUnbind`, `=CONNECTOR_ID` filter).
  const doomed = portal.bindings.filter(
    (b) =>
      b.event === event &&
      (b.eventType === 'offline') === offline &&
      (offline ? b.connectorId === call.authConnector : b.handler === handler) &&
      (authType === undefined || b.authType === authType) &&
      visibleTo(call, b),
  );
  portal.bindings = portal.bindings.filter((b) => !doomed.includes(b));
  return { result: { count: doomed.length } };
};

const eventGet: MethodHandler = (_params, call, portal) => {
  requireApp(call);
  const rows = portal.bindings
    .filter((b) => visibleTo(call, b))
    .sort((a, b) => a.id - b.id)
    .map((b) =>
      b.eventType === 'offline'
        ? { event: b.event, connector_id: b.connectorId, offline: 1 }
        : { event: b.event, handler: b.handler, auth_type: String(b.authType), offline: 0 },
    );
  return { result: rows };
};

const placementBind: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const placement = paramString(params, 'PLACEMENT').toUpperCase();
  if (placement === '') {
    throw new RestError(
      400,
      'ERROR_ARGUMENT',
      "Argument 'PLACEMENT' is null or empty",
      'PLACEMENT',
    );
  }
  // The main page is set in the app settings and cannot be bound.
  if (placement === 'DEFAULT')
    throw new RestError(400, 'ERROR_ARGUMENT', 'Wrong value', 'PLACEMENT');
  if (!KNOWN_PLACEMENTS.has(placement)) {
    throw new RestError(400, 'ERROR_PLACEMENT_NOT_FOUND', 'Placement not found');
  }
  const handler = paramString(params, 'HANDLER');
  if (handler === '') {
    throw new RestError(400, 'ERROR_ARGUMENT', "Argument 'HANDLER' is null or empty", 'HANDLER');
  }
  checkHandler(handler);
  if (portal.placements.some((p) => p.placement === placement && p.handler === handler)) {
    throw new RestError(
      400,
      'ERROR_CORE',
      'Unable to set placement handler: Handler already binded',
    );
  }
  const options = param(params, 'OPTIONS');
  portal.placements.push({
    id: portal.nextId(),
    placement,
    handler,
    title: paramString(params, 'TITLE'),
    description: paramString(params, 'DESCRIPTION'),
    groupName: paramString(params, 'GROUP_NAME'),
    options: isRecord(options) ? options : {},
    userId: 0,
  });
  return { result: true };
};

const placementUnbind: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const placement = paramString(params, 'PLACEMENT').toUpperCase();
  if (placement === '') {
    throw new RestError(
      400,
      'ERROR_ARGUMENT',
      "Argument 'PLACEMENT' is null or empty",
      'PLACEMENT',
    );
  }
  const handler = paramString(params, 'HANDLER');
  const keep = portal.placements.filter(
    (p) => p.placement !== placement || (handler !== '' && p.handler !== handler),
  );
  const removed = portal.placements.length - keep.length;
  portal.placements = keep;
  // The core counts 2 per deleted row (placement plus its language row): CORE lib/api/placement.php.
  return { result: { count: removed * 2 } };
};

const placementGet: MethodHandler = (_params, call, portal) => {
  requireAdmin(call);
  return {
    result: portal.placements.map((p) => ({
      placement: p.placement,
      userId: p.userId,
      handler: p.handler,
      options: Object.keys(p.options).length > 0 ? p.options : [],
      title: p.title,
      description: p.description,
      langAll: { en: { TITLE: p.title, DESCRIPTION: p.description, GROUP_NAME: p.groupName } },
    })),
  };
};

/**
 * `event.test`: fires ONAPPTEST to the calling app's handlers with `data` `{QUERY: the call's
 * parameters, LANGUAGE_ID}` (DOCS:api-reference/events/test-handler.md) and answers 1. The
 * core (CORE:lib/api/event.php `eventTest`) requires OAuth auth (AuthTypeException else) and
 * runs OnRestAppTest for the calling app's APP_ID only; the delivery goes out after the call,
 * with the tokens of the binding's auth_type user or of the caller, as any event's.
 */
const eventTest: MethodHandler = (params, call, portal) => {
  requireApp(call);
  const query: Record<string, PhpValue> = {};
  for (const [k, v] of Object.entries(params)) {
    if (k !== 'auth' && k !== 'access_token') query[k] = v as PhpValue;
  }
  fireInBackground(
    portal,
    'ONAPPTEST',
    { QUERY: query, LANGUAGE_ID: portal.lang },
    call.userId,
    restOrigin(call),
  );
  return { result: 1 };
};

export const BINDING_METHODS: Readonly<Record<string, MethodHandler>> = {
  'event.bind': eventBind,
  'event.unbind': eventUnbind,
  'event.get': eventGet,
  'event.test': eventTest,
  'placement.bind': placementBind,
  'placement.unbind': placementUnbind,
  'placement.get': placementGet,
};
