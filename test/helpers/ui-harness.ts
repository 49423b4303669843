import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EventMap } from '../../server/rules/model.js';
import { appParts } from '../../server/routes/index.js';
import { createServices, type Services } from '../../server/services.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { buildListener } from '../../server/start.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { startEmulator, type BitrixEmulator } from '../emulator/bitrix-emulator.js';
import type { PortalOptions } from '../emulator/types.js';
import { startHttpSink, type HttpSink } from './http-sink.js';
import { CLIENT_ID, CLIENT_SECRET } from './install-harness.js';
import { createManualClock } from './manual-clock.js';
import { createTestDeps, type TestDeps } from './test-deps.js';

export interface UiHarness {
  emu: BitrixEmulator;
  portal: Awaited<ReturnType<BitrixEmulator['addPortal']>>;
  t: TestDeps;
  services: Services;
  /** APP_URL: `http://localhost:PORT` (another site than the portal on 127.0.0.1) by default. */
  appUrl: string;
  /** Where the rules' http actions go: `/invoices` answers 201, `/fail` 400. */
  sink: HttpSink;
  listener: http.RequestListener;
  /** The installer page the app answered at install. */
  installHtml: string;
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** Two rules: a won deal posts an invoice (succeeds); a lost deal posts to /fail (fails). */
export function uiTestMap(sinkUrl: string): EventMap {
  const v = validateEventMap({
    rules: [
      {
        name: 'Won deal: invoice',
        on: ['ONCRMDEALUPDATE'],
        when: [{ field: 'STAGE_ID', becomes: 'WON' }],
        actions: [
          {
            type: 'http',
            name: 'invoice',
            method: 'POST',
            url: `${sinkUrl}/invoices`,
            body: { dealId: '{{deal.ID}}' },
          },
        ],
      },
      {
        name: 'Lost deal: notify',
        on: ['ONCRMDEALUPDATE'],
        when: [{ field: 'STAGE_ID', becomes: 'LOSE' }],
        actions: [
          {
            type: 'http',
            name: 'notify',
            method: 'POST',
            url: `${sinkUrl}/fail`,
            body: { dealId: '{{deal.ID}}' },
          },
        ],
      },
    ],
  });
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.map;
}

/**
 * The app, installed on one emulated portal, served on `appHost` (localhost by default, so a
 * browser sees the portal page on 127.0.0.1 framing another site, as with Bitrix24), pages
 * loading the emulator's BX24 library, and the two rules of `uiTestMap` as the default map.
 */
export async function startUiHarness(
  opts: {
    appHost?: string;
    env?: Record<string, string>;
    portal?: PortalOptions;
    /**
     * The emulator's tokens live on the test's manual clock (`h.t.clock`): advancing it past
     * an hour expires them, as for the app. Off by default: the emulator runs on real time.
     */
    sharedClock?: boolean;
  } = {},
): Promise<UiHarness> {
  const clock = createManualClock();
  const emu = await startEmulator({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    ...(opts.sharedClock ? { now: () => clock.now().getTime() } : {}),
  });
  const portal = await emu.addPortal(opts.portal);
  const sink = await startHttpSink((req) =>
    req.url.startsWith('/fail')
      ? { status: 400, body: { error: 'rejected by the test sink' } }
      : { status: 201, body: { id: 'INV-1' } },
  );
  let listener: http.RequestListener = (_req, res) => res.writeHead(503).end();
  const server = http.createServer((req, res) => listener(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const appUrl = `http://${opts.appHost ?? 'localhost'}:${port}`;
  const t = await createTestDeps(
    {
      B24_PORTAL_HOSTS: '127.0.0.1:*',
      B24_OAUTH_SERVERS: emu.oauthUrl,
      B24_CLIENT_ID: CLIENT_ID,
      B24_CLIENT_SECRET: CLIENT_SECRET,
      APP_URL: appUrl,
      B24_JS_SDK_URL: `${portal.url}/bx24.js`,
      ...opts.env,
    },
    { clock },
  );
  const services = createServices(t.deps);
  listener = buildListener(t.deps, appParts(t.deps, services));
  portal.setApp({ appUrl, installPath: t.deps.manifest.handlers.install });
  const drain = async () => {
    await portal.whenIdle();
    await services.intake.drain();
    await services.worker.drain();
  };
  const res = await portal.install();
  if (res.status !== 200) throw new Error(`install answered ${res.status}: ${res.body}`);
  await portal.finishInstall();
  await drain();
  await saveRuleMap(t.deps.db, undefined, uiTestMap(sink.url), t.clock.now());
  return {
    emu,
    portal,
    t,
    services,
    appUrl,
    sink,
    listener: (req, res) => listener(req, res),
    installHtml: res.body,
    drain,
    async close() {
      await emu.close();
      await services.close(5_000);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sink.close();
      await t.close();
    },
  };
}

/** Deals in three states: one won (processed, invoice sent), one lost (failed), one new. */
export async function seedDeals(
  h: UiHarness,
): Promise<{ won: string; lost: string; fresh: string }> {
  const won = await h.portal.addDeal({ TITLE: 'Won order', STAGE_ID: 'NEW', OPPORTUNITY: '100' });
  const lost = await h.portal.addDeal({ TITLE: 'Lost order', STAGE_ID: 'NEW', OPPORTUNITY: '50' });
  const fresh = await h.portal.addDeal({ TITLE: 'New order', STAGE_ID: 'NEW', OPPORTUNITY: '10' });
  await h.drain();
  await h.portal.updateDeal(won.id, { STAGE_ID: 'WON' });
  await h.portal.updateDeal(lost.id, { STAGE_ID: 'LOSE' });
  await h.drain();
  return { won: won.id, lost: lost.id, fresh: fresh.id };
}

/**
 * What Bitrix24 POSTs into the app frame
 * (https://apidocs.bitrix24.com/settings/oauth/simple-way.html) for one user, as fetch arguments.
 */
export function frameRequest(
  h: UiHarness,
  opts: {
    userId?: number;
    path?: string;
    domain?: string;
    memberId?: string;
    authId?: string;
    /** REFRESH_ID posted beside AUTH_ID (default: the pair issued with it). */
    refreshId?: string;
    applicationToken?: string | null;
    lang?: string;
    placement?: string;
    placementOptions?: Record<string, unknown>;
  } = {},
): { url: string; init: RequestInit } {
  const auth = h.portal.issueUserAuth(opts.userId ?? 1);
  const q = new URLSearchParams({
    DOMAIN: opts.domain ?? h.portal.domain,
    PROTOCOL: '0',
    LANG: opts.lang ?? 'en',
    APP_SID: 'a1b2c3d4e5f6',
  });
  const body = new URLSearchParams({
    AUTH_ID: opts.authId ?? auth.accessToken,
    AUTH_EXPIRES: '3600',
    REFRESH_ID: opts.refreshId ?? auth.refreshToken,
    SERVER_ENDPOINT: auth.serverEndpoint,
    member_id: opts.memberId ?? h.portal.memberId,
    status: 'L',
    PLACEMENT: opts.placement ?? 'DEFAULT',
    PLACEMENT_OPTIONS: JSON.stringify(opts.placementOptions ?? {}),
    APPLICATION_SCOPE: 'crm,placement,user_brief',
  });
  if (opts.applicationToken !== null) {
    body.set('APPLICATION_TOKEN', opts.applicationToken ?? h.portal.applicationToken);
  }
  return {
    url: `${h.appUrl.replace('localhost', '127.0.0.1')}${opts.path ?? '/app'}?${q}`,
    init: {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: body.toString(),
      redirect: 'manual',
    },
  };
}
