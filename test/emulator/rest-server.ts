import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatBitrixDate } from './crm-store.js';
import { parseRequestParams, readBody, sendJson } from './http-util.js';
import { runBatch, type Outcome } from './rest-batch.js';
import { param, RestError, type CallContext, type MethodResult } from './rest-error.js';
import { scopesOfMethod } from './known-names.js';
import { chargeOperating, operatingBlock, operatingTime } from './operating-limit.js';
import { METHODS } from './rest-methods.js';
import { wrongLicense } from './offline-queue.js';
import { injectRestFault } from './rest-faults.js';
import { findUser, type PortalState } from './state.js';

/**
 * The portal's REST endpoint: `/rest/<method>`, `/rest//<method>` (b24jssdk's double slash),
 * `/rest/<user>/<secret>/<method>` for inbound webhooks, each with an optional `.json`
 * (DOCS:settings/how-to-call-rest-api/general-principles.md). Method names are case-insensitive
 * (CORE classes/general/rest.php `CRestServer::__construct`, ToLower). Success: `{result, total?,
 * next?, time}`; errors: `{error, error_description}` with the status of the exception (CORE
 * lib/restexception.php).
 */

/** The answer's `time` (DOCS:limits.md's example); `operating` is added per method. */
function timeBlock(portal: PortalState, startMs: number): Record<string, unknown> {
  const finishMs = portal.ctx.now();
  const start = startMs / 1000;
  const finish = Math.max(finishMs, startMs) / 1000;
  return {
    start,
    finish,
    duration: finish - start,
    processing: finish - start,
    date_start: formatBitrixDate(startMs),
    date_finish: formatBitrixDate(finishMs),
    operating: 0,
  };
}

interface RoutedPath {
  method: string;
  webhook?: { userId: number; secret: string };
}

function routePath(pathname: string): RoutedPath | null {
  const rest = pathname.replace(/^\/rest\//, '');
  const parts = rest.split('/').filter((p) => p !== '');
  const clean = (m: string): string => m.toLowerCase().replace(/\.(json|xml)$/, '');
  if (parts.length === 1 && parts[0]) return { method: clean(parts[0]) };
  if (parts.length === 3 && parts[0] && parts[1] && parts[2] && /^\d+$/.test(parts[0])) {
    return { method: clean(parts[2]), webhook: { userId: Number(parts[0]), secret: parts[1] } };
  }
  return null;
}

/** `auth`, `access_token` or `Authorization: Bearer` (CORE lib/oauth/auth.php `getAuthKey`). */
function tokenFrom(req: IncomingMessage, params: Record<string, unknown>): string | null {
  for (const key of ['auth', 'access_token']) {
    const v = params[key];
    if (typeof v === 'string' && v !== '') return v;
  }
  const header = req.headers.authorization;
  const m = header ? /^Bearer\s+(.+)$/i.exec(header) : null;
  return m?.[1] ?? null;
}

function authenticate(
  portal: PortalState,
  req: IncomingMessage,
  route: RoutedPath,
  params: Record<string, unknown>,
): CallContext {
  const context = (
    via: CallContext['via'],
    userId: number,
    token: string | null,
    caller: string,
  ): CallContext => {
    const user = findUser(portal, userId);
    const connector = via === 'oauth' ? param(params, 'auth_connector') : undefined;
    return {
      via,
      userId,
      user,
      isAdmin: user?.admin ?? false,
      token,
      caller,
      authConnector: typeof connector === 'string' ? connector : '',
      scopes: new Set(portal.scope.split(',').map((s) => s.trim().toLowerCase())),
    };
  };
  if (route.webhook) {
    const owner = portal.inboundWebhooks.get(route.webhook.secret);
    // DOCS:_includes/system-errors.md: NO_AUTH_FOUND is a request with no auth at all; a
    // webhook that is not there (a wrong secret, a removed webhook) is INVALID_CREDENTIALS.
    if (owner === undefined || owner !== route.webhook.userId) {
      throw new RestError(401, 'INVALID_CREDENTIALS', 'Invalid request credentials');
    }
    if (portal.subscriptionEnded) {
      throw new RestError(401, 'ACCESS_DENIED', 'REST is available only by subscription');
    }
    return context('webhook', owner, null, `webhook:${owner}:${route.webhook.secret}`);
  }
  const token = tokenFrom(req, params);
  if (!token) throw new RestError(401, 'NO_AUTH_FOUND', 'Wrong authorization data');
  // The core asks whether the app is still installed before it looks at the token's expiry,
  // and a token the app held before it was removed never gets `invalid_token`. Which answer it
  // gets depends on the portal's cache (CORE:lib/oauth/auth.php `check`): the portal keeps
  // the OAuth server's answer about a token for an hour (`CACHE_TTL = 3600`).
  // - Cached from before the removal: `onRestCheckAuth` then finds the app inactive,
  //   `if(!is_array($clientInfo) || $clientInfo['ACTIVE'] !== 'Y')` → `APPLICATION_NOT_FOUND`,
  //   "Application not found", as an OAuthException (401: CORE:lib/oauthexception.php).
  // - Not cached (expired, evicted, another web node): the OAuth server's own refusal is
  //   passed on (`check`: `$authResult = $tokenInfo`; `onRestCheckAuth` stops at
  //   `array_key_exists('error', $tokenInfo)`): 401 `ERROR_OAUTH`, "Application not
  //   installed" (bitrix24/b24pysdk tests/integration/errors/test_errors.py
  //   `test_error_bitrix_api_error_oauth`, "OAuth server says app not installed when portal
  //   token cache is expired/missed"; the body: b24pysdk/errors/__init__.py
  //   `BitrixAPIErrorOAuth`).
  const issued = portal.ctx.tokens.accessIssuedTo(token);
  if (issued?.memberId === portal.memberId && issued.clientId === portal.ctx.clientId) {
    const removed = portal.installState === 'uninstalled';
    if (!portal.ctx.tokens.portalCheck(token, !removed)) {
      throw new RestError(401, 'ERROR_OAUTH', 'Application not installed');
    }
    if (removed) throw new RestError(401, 'APPLICATION_NOT_FOUND', 'Application not found');
  }
  const check = portal.ctx.tokens.checkAccess(token);
  if (!check.ok && check.error === 'expired_token') {
    throw new RestError(401, 'expired_token', 'The access token provided has expired.');
  }
  if (!check.ok || check.memberId !== portal.memberId) {
    throw new RestError(401, 'invalid_token', 'The access token provided is invalid.');
  }
  if (portal.subscriptionEnded) {
    throw new RestError(401, 'PAYMENT_REQUIRED', 'Subscription has been ended');
  }
  // Source keys are a plan feature: CORE classes/general/rest.php `CRestServer::checkAuth`,
  // `if(isset($this->authData['auth_connector']) && !$this->canUseConnectors()) throw new
  // LicenseException('auth_connector')`, `canUseConnectors()` being
  // `Feature::isFeatureEnabled('rest_auth_connector')` on the cloud; the request as a whole
  // is refused (a batch too), 403 WRONG_LICENSE (DOCS api-reference/events/event-offline-get.md
  // and event-bind.md, errors: "`auth_connector` is passed, but the plan does not support
  // source keys").
  if (param(params, 'auth_connector') !== undefined && !portal.offline.sourceKeys) {
    throw wrongLicense('auth_connector');
  }
  return {
    ...context('oauth', check.userId, token, `app:${check.clientId}`),
    clientId: check.clientId,
  };
}

function publicParams(params: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(params)) {
    if (k === 'auth' || k === 'access_token' || k.startsWith('bx24_')) continue;
    out[k] = v;
  }
  return out;
}

/**
 * A method outside the token's scopes. CORE:lib/oauth/auth.php `check` answers
 * `{error: 'insufficient_scope', error_description: 'The request requires higher privileges
 * than provided by the access token'}` as an OAuthException, whose status is 401 unless the
 * answer names another (CORE:lib/oauthexception.php; nothing names one). A batch sub-command
 * is refused by CRestServerBatchItem with `new OAuthException(['error' =>
 * 'insufficient_scope'])`: no description (the examples of DOCS:settings/how-to-call-rest-api/
 * batch.md show exactly that). DOCS:_includes/system-errors.md lists the error as 403, which
 * only the v3 server (`/rest/api/`, CORE:classes/general/RestApiServer.php) answers; the app
 * calls `/rest/`. The app must not tell the two apart: either is a permanent failure.
 */
function insufficientScope(inBatch: boolean): RestError {
  return new RestError(
    401,
    'insufficient_scope',
    inBatch ? '' : 'The request requires higher privileges than provided by the access token',
  );
}

/** Runs one method (top level or inside a batch): injected failures, lookup, handler, record. */
async function execute(
  portal: PortalState,
  method: string,
  params: Record<string, unknown>,
  call: CallContext,
  inBatch: boolean,
): Promise<Outcome> {
  const startMs = portal.ctx.now();
  let outcome: Outcome;
  try {
    const delay = portal.delays.get(method);
    if (delay !== undefined) {
      portal.delays.delete(method);
      await new Promise((r) => setTimeout(r, delay).unref());
    }
    const injected = portal.failures.get(method)?.shift();
    if (injected) {
      throw new RestError(injected.status, injected.error, injected.description ?? '');
    }
    let value: MethodResult;
    if (method === 'batch') {
      if (inBatch) {
        throw new RestError(
          405,
          'ERROR_BATCH_METHOD_NOT_ALLOWED',
          'Method is not allowed for batch usage',
        );
      }
      value = await runBatch(params, (m, p) => execute(portal, m, p, call, true));
    } else {
      const handler = METHODS[method];
      if (!handler) throw new RestError(404, 'ERROR_METHOD_NOT_FOUND', 'Method not found!');
      const granted = scopesOfMethod(method);
      // Inbound webhooks carry their own scopes, which the emulator does not model.
      if (call.via === 'oauth' && granted && !granted.some((s) => call.scopes.has(s))) {
        throw insufficientScope(inBatch);
      }
      const blocked = operatingBlock(portal, call.caller, method);
      if (blocked) throw blocked;
      value = await handler(params, call, portal);
      chargeOperating(portal, call.caller, method);
    }
    outcome = {
      ok: true,
      value,
      time: { ...timeBlock(portal, startMs), ...operatingTime(portal, call.caller, method) },
    };
  } catch (err) {
    const error =
      err instanceof RestError
        ? err
        : new RestError(
            500,
            'INTERNAL_SERVER_ERROR',
            err instanceof Error ? err.message : String(err),
          );
    outcome = { ok: false, error };
  }
  portal.calls.push({
    method,
    params: publicParams(params),
    auth: call.token,
    via: call.via,
    userId: call.userId,
    status: outcome.ok ? 200 : outcome.error.status,
    ...(outcome.ok ? {} : { error: outcome.error.code }),
    ...(inBatch ? { inBatch: true } : {}),
    at: startMs,
  });
  return outcome;
}

export async function handleRest(
  portal: PortalState,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const startMs = portal.ctx.now();
  const route = routePath(url.pathname);
  let params: Record<string, unknown> = {};
  const fail = (error: RestError, call?: Partial<CallContext>): void => {
    portal.calls.push({
      method: route?.method ?? '',
      params: publicParams(params),
      auth: call?.token ?? null,
      via: route?.webhook ? 'webhook' : 'oauth',
      userId: call?.userId ?? null,
      status: error.status,
      error: error.code,
      at: startMs,
    });
    sendJson(res, error.status, error.toJSON());
  };
  try {
    params = parseRequestParams(req, url, await readBody(req));
  } catch {
    fail(new RestError(400, 'INVALID_REQUEST', 'Malformed request body'));
    return;
  }
  // A batch is one HTTP request, so it counts once (DOCS:limits.md). The bucket is checked
  // before authentication: QUERY_LIMIT_EXCEEDED is nowhere in the core `rest` module (the
  // cloud's front answers it, 503 by DOCS:_includes/system-errors.md), so it comes before
  // the module reads any auth.
  if (!portal.bucket.take()) {
    fail(new RestError(503, 'QUERY_LIMIT_EXCEEDED', 'Too many requests'));
    return;
  }
  // The reliability suite's fault switch (rest-faults.ts): off unless armed for this portal.
  if (injectRestFault(portal, fail)) return;
  if (portal.latencyMs > 0) await new Promise((r) => setTimeout(r, portal.latencyMs).unref());
  // The method is looked up before the auth is read: CORE:classes/general/rest.php
  // `CRestServer::process` runs `isTokenCheck()` (404 "Method not found!") and `checkScope()`
  // before `checkAuth()`, so an unknown method with an expired token is a 404, not a 401.
  if (!route || (route.method !== 'batch' && !Object.hasOwn(METHODS, route.method))) {
    fail(new RestError(404, 'ERROR_METHOD_NOT_FOUND', 'Method not found!'));
    return;
  }
  let call: CallContext;
  try {
    call = authenticate(portal, req, route, params);
  } catch (err) {
    fail(err as RestError, { token: tokenFrom(req, params) });
    return;
  }
  const outcome = await execute(portal, route.method, params, call, false);
  if (!outcome.ok) {
    sendJson(res, outcome.error.status, outcome.error.toJSON());
    return;
  }
  const body: Record<string, unknown> = { result: outcome.value.result };
  if (outcome.value.next !== undefined) body['next'] = outcome.value.next;
  if (outcome.value.total !== undefined) body['total'] = outcome.value.total;
  body['time'] = outcome.time;
  sendJson(res, 200, body);
}
