import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parseRequestParams, readBody, sendJson } from './http-util.js';
import type { EmulatorContext } from './state.js';

/**
 * The OAuth server (oauth.bitrix.info stand-in). `/oauth/token/` takes the refresh grant as
 * GET query (as documented) or POST form (as b24jssdk and CRest send it), rotates the
 * refresh token and answers in the shape of DOCS:settings/oauth/auto-renewal.md.
 * `/rest/app.info` answers for whichever portal issued the token, as the real server does
 * (DOCS:settings/oauth/simple-way.md). Errors use the codes of
 * DOCS:settings/oauth/error-codes.md, plus `wrong_client`, which those do not list. The
 * statuses of a wrong client id (200) and secret (400) are those a real server gave
 * bitrix24/b24pysdk's integration tests (tests/integration/errors/test_errors_oauth.py,
 * b24pysdk/errors/oauth.py); the other statuses are guesses.
 */

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

async function handleToken(
  ctx: EmulatorContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const params = parseRequestParams(req, url, await readBody(req));
  await ctx.beforeNextToken.shift()?.();
  const grantType = str(params['grant_type']);
  const clientId = str(params['client_id']);
  const clientSecretOk = safeEqual(str(params['client_secret']) ?? '', ctx.clientSecret);
  const refreshToken = str(params['refresh_token']);
  const answer = (status: number, payload: unknown): void => {
    ctx.oauthCalls.push({
      method: req.method ?? 'GET',
      grantType,
      clientId,
      clientSecretOk,
      refreshToken,
      status,
      at: ctx.now(),
    });
    sendJson(res, status, payload);
  };

  const injected = ctx.oauthFailures.shift();
  if (injected) {
    answer(injected.status, {
      error: injected.error,
      error_description: injected.description ?? '',
    });
    return;
  }
  if (grantType !== 'refresh_token') {
    answer(400, { error: 'invalid_request', error_description: 'Unsupported grant_type' });
    return;
  }
  // An unknown client id: 200 with `{"error": "wrong_client"}` (b24pysdk
  // `test_error_bitrix_oauth_wrong_client`, `BitrixOauthWrongClient` under "# 200"); a wrong
  // secret: 400 `invalid_client` (`test_error_bitrix_oauth_invalid_client`,
  // `BitrixOAuthInvalidClient` under "# 400"). Those tests send an authorization code; the
  // client is checked before the code or token the grant carries, so a refresh grant is
  // answered alike.
  if (clientId !== ctx.clientId) {
    answer(200, { error: 'wrong_client' });
    return;
  }
  if (!clientSecretOk) {
    answer(400, { error: 'invalid_client', error_description: 'Invalid client credentials' });
    return;
  }
  const failing = [...ctx.portals.values()].find(
    (p) => p.refreshFailure && ctx.tokens.refreshBelongsTo(refreshToken ?? '', p.memberId),
  );
  if (failing?.refreshFailure === 'invalid_client') {
    // The refresh token is not spent: the same one works once the app is back.
    answer(400, { error: 'invalid_client', error_description: 'Invalid client credentials' });
    return;
  }
  if (failing?.refreshFailure === 'PAYMENT_REQUIRED') {
    // 402 is a guess: the docs name the code, not the status.
    answer(402, { error: 'PAYMENT_REQUIRED', error_description: 'Payment required' });
    return;
  }
  // The app removed from the portal: "Invalid client data was provided. The application may
  // not be installed in Bitrix24" (DOCS:settings/oauth/error-codes.md, invalid_client), for
  // its refresh tokens as for any other of this portal's.
  const removed = [...ctx.portals.values()].find(
    (p) =>
      p.installState === 'uninstalled' &&
      ctx.tokens.refreshBelongsTo(refreshToken ?? '', p.memberId),
  );
  if (removed) {
    answer(400, { error: 'invalid_client', error_description: 'Invalid client credentials' });
    return;
  }
  const grant = ctx.tokens.consumeRefresh(refreshToken ?? '');
  const portal = grant.ok ? ctx.portals.get(grant.memberId) : undefined;
  // A refresh token of another app presented with our credentials: the server keeps refresh
  // tokens per app, so it does not find it. A guess: no public source says which error
  // the real server answers; `invalid_grant` is what OAuth 2.0 (RFC 6749, section 5.2) prescribes.
  if (!grant.ok || !portal || grant.clientId !== ctx.clientId) {
    answer(400, { error: 'invalid_grant', error_description: 'Invalid grant' });
    return;
  }
  // Whoever the refresh token belongs to — the installing admin's pair the app keeps for the
  // portal, or a user's REFRESH_ID posted into a frame — gets a new pair for the same user and
  // app, and the old refresh token is spent (b24restdocs settings/oauth/auto-renewal.md: "a new
  // pair of tokens", "new value of the additional authorization token"; the frame's pair is the
  // same kind of token: settings/oauth/simple-way.md).
  const issued = ctx.tokens.issue(portal.memberId, grant.userId, grant.clientId);
  // Keys in the order of the documented response; `domain` is the OAuth server here.
  answer(200, {
    access_token: issued.accessToken,
    client_endpoint: portal.clientEndpoint,
    domain: new URL(ctx.oauthUrl).host,
    expires: issued.expires,
    expires_in: issued.expiresIn,
    member_id: portal.memberId,
    refresh_token: issued.refreshToken,
    scope: portal.scope,
    server_endpoint: ctx.serverEndpoint,
    status: portal.status,
    user_id: grant.userId,
  });
}

async function handleAppInfo(
  ctx: EmulatorContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const params = parseRequestParams(req, url, await readBody(req));
  await ctx.beforeNextToken.shift()?.();
  const token = str(params['auth']) ?? '';
  const check = ctx.tokens.checkAccess(token);
  const portal = check.ok ? ctx.portals.get(check.memberId) : undefined;
  if (!check.ok || !portal) {
    const error = check.ok ? 'invalid_token' : check.error;
    sendJson(res, 401, { error, error_description: 'The access token provided is invalid.' });
    return;
  }
  sendJson(res, 200, {
    result: {
      ID: check.clientId === ctx.clientId ? 1 : 2,
      // A local app's CODE is its client_id (CORE:lib/app.php `AppTable::onAfterAdd`).
      CODE: check.clientId,
      VERSION: portal.appVersion,
      STATUS: portal.status,
      INSTALLED: portal.installState === 'installed',
      PAYMENT_EXPIRED: 'N',
      DAYS: null,
      LANGUAGE_ID: 'en',
      LICENSE: 'en_pro100',
      LICENSE_TYPE: 'pro100',
      LICENSE_FAMILY: 'pro',
    },
  });
}

export function createOAuthServer(ctx: EmulatorContext): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://oauth.invalid');
    const path = url.pathname.replace(/\/+$/, '');
    const route =
      path === '/oauth/token'
        ? handleToken
        : /^\/rest\/+app\.info(\.json)?$/i.test(path)
          ? handleAppInfo
          : null;
    if (!route) {
      sendJson(res, 404, { error: 'not_found', error_description: 'Not found' });
      return;
    }
    route(ctx, req, res, url).catch((err: unknown) => {
      if (!res.headersSent) {
        sendJson(res, 400, { error: 'invalid_request', error_description: String(err) });
      }
    });
  });
}
