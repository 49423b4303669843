/**
 * A real-HTTP emulator of Bitrix24 portals and their OAuth server, for integration tests,
 * browser tests and the demo. It models the Bitrix24 core, not our reading of it: each
 * behaviour the app relies on cites its source where it is implemented, a docs page of
 * github.com/bitrix24/b24restdocs (`DOCS:<path>`, published at apidocs.bitrix24.com) or a
 * file and function of the core's `rest` module (`CORE:<path>`), and says so where it is a
 * guess. Every listener binds 127.0.0.1 on its own port. Nothing listens until
 * startEmulator() runs.
 *
 * @example
 * const emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret' });
 * const portal = await emu.addPortal();
 * const auth = portal.issueUserAuth(1);
 * await emu.close();
 */
import { createOAuthServer } from './oauth-server.js';
import { closeServer, listen } from './http-util.js';
import { startPortal, type StartedPortal } from './portal.js';
import type { EmulatedPortal } from './portal-api.js';
import { issuedSecrets, type EmulatorContext } from './state.js';
import { createTokenStore } from './token-store.js';
import type { EmulatorOptions, FailureSpec, OAuthCallRecord, PortalOptions } from './types.js';

export interface BitrixEmulator {
  /** `http://127.0.0.1:PORT`, the OAuth server (stands in for oauth.bitrix.info). */
  readonly oauthUrl: string;
  /** `${oauthUrl}/rest/`, sent as SERVER_ENDPOINT / auth[server_endpoint]. */
  readonly serverEndpoint: string;
  readonly oauthCalls: readonly OAuthCallRecord[];
  readonly portals: readonly EmulatedPortal[];
  addPortal(options?: PortalOptions): Promise<EmulatedPortal>;
  portal(memberId: string): EmulatedPortal | undefined;
  /**
   * The token endpoint answers the next `times` requests with this failure (a 5xx outage,
   * `invalid_client`…) instead of serving them.
   */
  failNextToken(failure: FailureSpec, times?: number): void;
  /**
   * Runs `fn` when the next token request arrives, and serves the request only once it has
   * resolved (a fault of the test's making: the app's database locked while its refresh is
   * in flight).
   */
  beforeNextToken(fn: () => Promise<void>): void;
  /** Every token and secret issued so far (see state.ts `issuedSecrets`). */
  issuedTokens(): string[];
  /** Aborts deliveries in flight and closes every listener. */
  close(): Promise<void>;
}

export async function startEmulator(options: EmulatorOptions): Promise<BitrixEmulator> {
  const now = options.now ?? Date.now;
  const accessTokenTtlSec = options.accessTokenTtlSec ?? 3600;
  const ctx: EmulatorContext = {
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    accessTokenTtlSec,
    now,
    oauthUrl: '',
    serverEndpoint: '',
    tokens: createTokenStore(now, accessTokenTtlSec, options.clientId),
    oauthFailures: [],
    beforeNextToken: [],
    oauthCalls: [],
    portals: new Map(),
  };
  const oauthServer = createOAuthServer(ctx);
  const oauthPort = await listen(oauthServer, options.oauthPort ?? 0);
  ctx.oauthUrl = `http://127.0.0.1:${oauthPort}`;
  ctx.serverEndpoint = `${ctx.oauthUrl}/rest/`;
  const started: StartedPortal[] = [];
  let closed = false;

  return {
    oauthUrl: ctx.oauthUrl,
    serverEndpoint: ctx.serverEndpoint,
    oauthCalls: ctx.oauthCalls,
    get portals() {
      return started.map((p) => p.api);
    },
    async addPortal(portalOptions = {}) {
      if (closed) throw new Error('emulator is closed');
      const portal = await startPortal(ctx, portalOptions);
      started.push(portal);
      return portal.api;
    },
    portal(memberId) {
      return started.find((p) => p.api.memberId === memberId)?.api;
    },
    failNextToken(failure, times = 1) {
      for (let i = 0; i < times; i += 1) ctx.oauthFailures.push(failure);
    },
    beforeNextToken(fn) {
      ctx.beforeNextToken.push(fn);
    },
    issuedTokens: () => issuedSecrets(ctx),
    async close() {
      closed = true;
      await Promise.all(started.map((p) => p.close()));
      await closeServer(oauthServer);
    },
  };
}

export { encodePhpForm, flattenPhp, phpUrlencode, type PhpValue } from './php-form.js';
export {
  buildEventAuth,
  buildEventBody,
  type EventAuthInput,
  type EventAuthTokens,
  type EventEnvelope,
} from './event-body.js';
export { DELIVERY_USER_AGENT } from './event-delivery.js';
export type { EmulatedPortal } from './portal-api.js';
export type * from './types.js';
