import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createApp } from '../../../server/routes/app.js';
import { appParts } from '../../../server/routes/index.js';
import { createServices } from '../../../server/services.js';
import { startEmulator } from '../../emulator/bitrix-emulator.js';
import { unusedLocalUrl } from '../../emulator/recording-receiver.js';
import { openFrameSession } from '../../helpers/frame-session.js';
import {
  hostileRequests,
  mountedRoutes,
  type HostileRequest,
  type MountedRoute,
} from '../../helpers/hostile-input.js';
import { CLIENT_ID, CLIENT_SECRET } from '../../helpers/install-harness.js';
import { spawnServer } from '../../helpers/spawn-server.js';
import { createTestDeps } from '../../helpers/test-deps.js';
import type { ReliabilityContext, Row, Scenario } from '../types.js';

const fmt = (n: number) => n.toLocaleString('en-US');

/** Every route the app mounts, read from the router of an app built with throwaway deps. */
export async function appRoutes(): Promise<{ routes: MountedRoute[]; eventPath: string }> {
  const t = await createTestDeps();
  const services = createServices(t.deps);
  try {
    const parts = appParts(t.deps, services);
    const routes = mountedRoutes(createApp(t.deps, parts.routes));
    for (const f of parts.fast) routes.push({ method: f.method, path: f.path, handlers: [] });
    return { routes, eventPath: t.deps.manifest.handlers.events };
  } finally {
    await services.close(1000);
    await t.close();
  }
}

interface Answer {
  status: number;
  body: string;
  /** Set when the connection failed instead of answering. */
  error?: string;
}

function send(base: URL, agent: http.Agent, r: HostileRequest): Promise<Answer> {
  return new Promise((resolve) => {
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.body.length > 0 || !['GET', 'HEAD'].includes(r.method)) {
      headers['content-length'] = r.body.length;
    }
    let req: http.ClientRequest;
    try {
      req = http.request({
        host: base.hostname,
        port: base.port,
        method: r.method,
        path: r.path,
        agent,
        headers,
        timeout: 15_000,
      });
    } catch (e) {
      // Node refuses to send it at all (e.g. a character not allowed in a header).
      resolve({ status: 0, body: '', error: `not sendable: ${(e as Error).message}` });
      return;
    }
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', (e) => resolve({ status: res.statusCode ?? 0, body: '', error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: -1, body: '', error: e.message }));
    req.end(r.body);
  });
}

/**
 * Generated hostile input to every route the app mounts, against the real built server in
 * its own process (a crash would show as an exit): 5xx answers, crashes, health afterwards,
 * and whether a genuine delivery is still stored.
 */
export const scenario: Scenario = async (ctx: ReliabilityContext): Promise<Row[]> => {
  const count = ctx.scale === 'full' ? 10_000 : 1_500;
  const { routes, eventPath } = await appRoutes();
  const emu = await startEmulator({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'b24hooks-rel-hostile-'));
  ctx.dataDirs.push(dataDir);
  const appUrl = await unusedLocalUrl();
  const pages = new Set<string>();
  const keep = (text: string) => {
    if (text) pages.add(text);
  };
  const portal = await emu.addPortal();
  const server = await spawnServer(
    {
      DATA_DIR: dataDir,
      PORT: new URL(appUrl).port,
      APP_URL: appUrl,
      B24_PORTAL_HOSTS: '127.0.0.1:*',
      B24_OAUTH_SERVERS: emu.oauthUrl,
      B24_CLIENT_ID: CLIENT_ID,
      B24_CLIENT_SECRET: CLIENT_SECRET,
      B24_OFFLINE_EVENTS: 'off',
      B24_JS_SDK_URL: `${portal.url}/bx24.js`,
      LOG_LEVEL: 'debug',
    },
    20_000,
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  try {
    portal.setApp({ appUrl, installPath: '/install' });
    const installed = await portal.install();
    keep(installed.body);
    if (installed.status !== 200) throw new Error(`install answered ${installed.status}`);
    await portal.finishInstall();
    const deal = await portal.addDeal({ TITLE: 'Fuzz target', STAGE_ID: 'NEW' });
    const update = await portal.updateDeal(deal.id, { STAGE_ID: 'PREPARATION' });
    await portal.whenIdle();
    const validEventBody = update.deliveries[0]?.body;
    if (!validEventBody) throw new Error('the emulator delivered no ONCRMDEALUPDATE');
    const admin = await openFrameSession(appUrl, portal, 1, keep);
    const reader = await openFrameSession(appUrl, portal, 2, keep);

    const base = new URL(appUrl);
    const statuses = new Map<number, number>();
    const fiveXx: string[] = [];
    const resetSamples: string[] = [];
    let sent = 0;
    let resets = 0;
    let resetsOnSmall = 0;
    let unsendable = 0;
    const requests = hostileRequests(routes, count, {
      validEventBody,
      eventPath,
      sessions: [admin, reader],
      realIds: [deal.id, '1', '2'],
      seed: ctx.scale === 'full' ? 20261128 : 20261127,
    });
    const worker = async () => {
      for (let next = requests.next(); !next.done; next = requests.next()) {
        const r = next.value;
        const a = await send(base, agent, r);
        if (a.error?.startsWith('not sendable')) {
          unsendable += 1;
          continue;
        }
        sent += 1;
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        keep(a.body.slice(0, 20_000));
        if (a.status === -1) {
          resets += 1;
          if (!r.huge && r.body.length < 64 * 1024) resetsOnSmall += 1;
          const headBytes = Object.entries(r.headers).reduce(
            (n, [k, v]) => n + k.length + v.length,
            0,
          );
          resetSamples.push(
            `${a.error} ${r.method} ${r.path.slice(0, 80)} [${r.route}; ${r.kind}; ` +
              `body ${r.body.length} B; headers ${headBytes} B; path ${r.path.length} B]`,
          );
        }
        if (a.status >= 500) {
          fiveXx.push(
            `${a.status} ${r.method} ${r.path.slice(0, 120)} [${r.route}; ${r.kind}; ` +
              `${r.headers['content-type'] ?? 'no type'}] → ${a.body.slice(0, 200)}`,
          );
        }
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: 8 }, worker));
    const seconds = (Date.now() - started) / 1000;
    if (fiveXx.length)
      ctx.logs.push(`hostile input 5xx samples:\n${fiveXx.slice(0, 20).join('\n')}`);
    if (resetSamples.length) {
      const text = `hostile input connection resets:\n${resetSamples.slice(0, 20).join('\n')}`;
      ctx.logs.push(text);
      process.stderr.write(`${text}\n`);
    }

    const alive = server.proc.exitCode === null && server.proc.signalCode === null;
    const health = alive
      ? await fetch(`${appUrl}/healthz`).then(
          (r) => r.status,
          () => 0,
        )
      : 0;
    let stored = 0;
    let delivered = 0;
    let dashboard = 0;
    if (alive) {
      // Pages still render for a real session (no polluted prototype, no broken state).
      const page = await fetch(`${appUrl}/ui`, { headers: { cookie: admin.cookie } });
      const html = await page.text();
      keep(html);
      dashboard = page.status === 200 && html.includes('id="figures"') ? 200 : page.status || -1;
      const after = await portal.addDeal({ TITLE: 'After the barrage', STAGE_ID: 'NEW' });
      await portal.whenIdle();
      delivered = after.deliveries.filter((d) => d.status === 200).length;
      const db = new Database(path.join(dataDir, 'b24hooks.sqlite'), { readonly: true });
      try {
        const row = db
          .prepare(
            `select count(*) as n from events where entity_id = ? and event = 'ONCRMDEALADD' and status != 'rejected'`,
          )
          .get(after.id) as { n: number };
        stored = row.n;
      } finally {
        db.close();
      }
    }
    const byStatus = [...statuses.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([s, n]) => `${s === -1 ? 'reset' : s}: ${fmt(n)}`)
      .join(', ');
    const fivexx = [...statuses.entries()].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0);
    const methods = new Set(routes.map((r) => `${r.method} ${r.path}`)).size;
    return [
      {
        area: 'Hostile input',
        check: `generated hostile requests to all ${methods} routes (+ static files, wrong methods)`,
        measured:
          `sent ${fmt(sent)} in ${seconds.toFixed(1)} s · 5xx ${fmt(fivexx)} · ${byStatus}` +
          (unsendable ? ` · ${unsendable} not sendable by the client` : ''),
        expected: `≥ ${fmt(count)} sent, 5xx 0`,
        pass: sent >= count - unsendable && sent >= count * 0.99 && fivexx === 0,
      },
      {
        area: 'Hostile input',
        check: 'server process after the barrage (spawned, real build)',
        measured:
          `crashes ${alive ? 0 : 1} · /healthz ${health} · dashboard ${dashboard} · connection resets ${resets}` +
          ` (${resetsOnSmall} on bodies under 64 KB)`,
        expected: 'crashes 0, /healthz 200, no reset on a small body',
        pass: alive && health === 200 && dashboard === 200 && resetsOnSmall === 0,
      },
      {
        area: 'Hostile input',
        check: 'a genuine delivery after the barrage',
        measured: `answered 200: ${delivered} · stored: ${stored}`,
        expected: 'stored 1',
        pass: delivered === 1 && stored === 1,
      },
    ];
  } finally {
    agent.destroy();
    await server.stop('SIGTERM');
    ctx.logs.push(server.stdout(), server.stderr());
    for (const p of pages) ctx.pages.push(p);
    for (const tkn of emu.issuedTokens()) ctx.issuedTokens.add(tkn);
    await emu.close();
  }
};
