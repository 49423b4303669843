import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HostResolver } from '../../server/lib/http-guard.js';
import type { BitrixRestOptions } from '../../server/bitrix/rest.js';
import type { Env } from '../../server/config.js';
import { appParts } from '../../server/routes/index.js';
import { createServices, type Services } from '../../server/services.js';
import { buildListener } from '../../server/start.js';
import { startEmulator, type BitrixEmulator } from '../emulator/bitrix-emulator.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import type { HttpResponseSummary, PortalOptions } from '../emulator/types.js';
import { createTestDeps, type TestDeps } from './test-deps.js';

export const CLIENT_ID = 'local.test';
export const CLIENT_SECRET = 'test-client-secret';

/** The app half of the harness: the real app on a local port, trusting the given OAuth server. */
export interface AppHarness {
  t: TestDeps;
  services: Services;
  /** The app's own URL (APP_URL): the emulator delivers events here. */
  appUrl: string;
  /** Stops the app (services and HTTP server), keeping the data dir. */
  stopApp(): Promise<void>;
  /** The app is down: services stopped, and deliveries to APP_URL fail (connection reset). */
  pauseApp(): Promise<void>;
  /** Starts fresh services on the same data dir and serves APP_URL again. */
  resumeApp(): void;
  /** Stops the app and removes its data. */
  close(): Promise<void>;
}

export interface InstallHarness extends AppHarness {
  emu: BitrixEmulator;
  addPortal(options?: PortalOptions): ReturnType<BitrixEmulator['addPortal']>;
}

/**
 * The real app listening on a local port, with APP_URL pointing at it, and the Bitrix24
 * emulator (portals + OAuth server) allowed by B24_PORTAL_HOSTS / B24_OAUTH_SERVERS.
 */
export async function startInstallHarness(
  env: Env = {},
  emulator: { now?: () => number } = {},
  app: { bitrix?: BitrixRestOptions; resolveHost?: HostResolver } = {},
): Promise<InstallHarness> {
  const emu = await startEmulator({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    ...emulator,
  });
  const a = await startApp(emu.oauthUrl, env, app);
  return {
    emu,
    t: a.t,
    get services() {
      return a.services;
    },
    appUrl: a.appUrl,
    async addPortal(options) {
      const p = await emu.addPortal(options);
      p.setApp({ appUrl: a.appUrl, installPath: a.t.deps.manifest.handlers.install });
      return p;
    },
    stopApp: a.stopApp,
    pauseApp: a.pauseApp,
    resumeApp: a.resumeApp,
    async close() {
      await emu.close();
      await a.close();
    },
  };
}

/**
 * The real app listening on a local port, with APP_URL pointing at it, trusting the OAuth
 * server at `oauthUrl` and portals on loopback (B24_PORTAL_HOSTS / B24_OAUTH_SERVERS): the
 * emulator may run in this process or another.
 */
export async function startApp(
  oauthUrl: string,
  env: Env = {},
  app: { bitrix?: BitrixRestOptions; resolveHost?: HostResolver } = {},
): Promise<AppHarness> {
  let listener: http.RequestListener = (_req, res) => res.writeHead(503).end();
  const server = http.createServer((req, res) => listener(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const t = await createTestDeps(
    {
      B24_PORTAL_HOSTS: '127.0.0.1:*',
      B24_OAUTH_SERVERS: oauthUrl,
      // An install POST without SERVER_ENDPOINT uses its zone's OAuth server: the emulator's.
      B24_OAUTH_ZONE_SERVERS: `*=${oauthUrl}`,
      B24_CLIENT_ID: CLIENT_ID,
      B24_CLIENT_SECRET: CLIENT_SECRET,
      APP_URL: appUrl,
      ...env,
    },
    { bitrix: app.bitrix, resolveHost: app.resolveHost },
  );
  let services = createServices(t.deps);
  let servicesOpen = true;
  listener = buildListener(t.deps, appParts(t.deps, services));
  let appStopped = false;
  async function stopApp() {
    if (appStopped) return;
    appStopped = true;
    if (servicesOpen) await services.close(1000);
    servicesOpen = false;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return {
    t,
    get services() {
      return services;
    },
    appUrl,
    stopApp,
    async pauseApp() {
      if (!servicesOpen) return;
      servicesOpen = false;
      await services.close(1000);
      listener = (req) => req.socket.destroy();
    },
    resumeApp() {
      if (servicesOpen || appStopped) return;
      services = createServices(t.deps);
      servicesOpen = true;
      listener = buildListener(t.deps, appParts(t.deps, services));
    },
    async close() {
      await stopApp();
      await t.close();
    },
  };
}

/** What `installPortal` drives: an emulated portal, here or in another process. */
export interface InstallablePortal {
  install(): Promise<HttpResponseSummary>;
  finishInstall(): Promise<unknown>;
  whenIdle(): Promise<void>;
}

/**
 * A portal with the app installed the way Bitrix24 does it (installer POST, installFinish,
 * ONAPPINSTALL handled), and `settle`, which waits until the deliveries sent so far are
 * stored and every due job has run; it has run once before this resolves.
 */
export async function installPortal<P extends InstallablePortal>(
  h: { services: Services; addPortal(options?: PortalOptions): Promise<P> },
  options?: PortalOptions,
): Promise<{ portal: P; settle(): Promise<void> }>;
// Last, so that `ReturnType<typeof installPortal>` names the emulator's portal.
export async function installPortal(
  h: InstallHarness,
  options?: PortalOptions,
): Promise<{ portal: EmulatedPortal; settle(): Promise<void> }>;
export async function installPortal(
  h: { services: Services; addPortal(options?: PortalOptions): Promise<InstallablePortal> },
  options?: PortalOptions,
): Promise<{ portal: InstallablePortal; settle(): Promise<void> }> {
  const portal = await h.addPortal(options);
  const res = await portal.install();
  if (res.status !== 200) throw new Error(`install answered ${res.status}: ${res.body}`);
  await portal.finishInstall();
  const settle = async () => {
    await portal.whenIdle();
    await h.services.intake.drain();
    await h.services.worker.drain();
  };
  await settle();
  return { portal, settle };
}

/**
 * The environment of a spawned server (dist/server/main.js) that takes over this harness's
 * install: its secrets, its emulated portal and OAuth server, offline events off. Callers
 * add the database, port and their own settings.
 */
export function spawnedAppEnv(
  h: Pick<InstallHarness, 't' | 'emu'>,
  dataDir: string,
): Record<string, string> {
  const config = h.t.deps.config;
  return {
    DATA_DIR: dataDir,
    SESSION_SECRET: config.sessionSecret,
    TOKEN_ENCRYPTION_KEY: config.tokenEncryptionKey.toString('hex'),
    B24_PORTAL_HOSTS: '127.0.0.1:*',
    B24_OAUTH_SERVERS: h.emu.oauthUrl,
    B24_OAUTH_ZONE_SERVERS: `*=${h.emu.oauthUrl}`,
    B24_CLIENT_ID: config.b24.clientId ?? '',
    B24_CLIENT_SECRET: config.b24.clientSecret ?? '',
    B24_OFFLINE_EVENTS: 'off',
    ACTION_PRIVATE_HOSTS: '127.0.0.0/8',
  };
}
