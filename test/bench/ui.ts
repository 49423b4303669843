import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { buildListener } from '../../server/start.js';
import { uiRoutes } from '../../server/ui/routes.js';
import { SESSION_COOKIE, SESSION_TTL_MS, signedSessionId } from '../../server/ui/session.js';
import { upsertPortal } from '../../db/stores/portals.js';
import { KnexSessionStore } from '../../db/stores/sessions.js';
import { createTestDeps } from '../helpers/test-deps.js';

const DAY = 86_400_000;
const EVENTS = [
  'ONCRMDEALADD',
  'ONCRMDEALUPDATE',
  'ONCRMDEALUPDATE',
  'ONCRMDEALUPDATE',
  'ONCRMLEADADD',
];
/** Weighted statuses: mostly processed, some skipped, a few failed, a sliver of backlog. */
const STATUSES = [
  ...Array<string>(88).fill('processed'),
  ...Array<string>(7).fill('skipped'),
  ...Array<string>(3).fill('failed'),
  'received',
  'rejected',
];

const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * 0.95) - 1] ?? 0;

/**
 * `npm run bench -- ui [--events N] [--requests N]`: the event log and the dashboard with
 * 1,000,000 logged events (30 days, one portal, 250,000 action runs), measured end to end
 * over HTTP with a session, sequential requests. Targets (issue 6): log page p95 ≤ 200 ms
 * with and without filters, dashboard p95 ≤ 300 ms.
 */
export async function uiBench(args: { events: number; requests: number }): Promise<void> {
  const t = await createTestDeps({ LOG_LEVEL: 'silent' });
  const { deps } = t;
  const now = Date.now();
  t.clock.set(now);
  const portal = await upsertPortal(deps.db, {
    member_id: randomBytes(16).toString('hex'),
    domain: 'bench.bitrix24.com',
    client_endpoint: 'https://bench.bitrix24.com/rest/',
    status: 'installed',
    updated_at: now,
  });

  const started = Date.now();
  const span = 30 * DAY;
  const batch = 500;
  await deps.db.transaction(async (trx) => {
    for (let i = 0; i < args.events; i += batch) {
      const rows = [];
      for (let j = i; j < Math.min(args.events, i + batch); j++) {
        const receivedAt = now - span + Math.floor((j / args.events) * span);
        const status = STATUSES[j % STATUSES.length]!;
        const entityId = String(1 + ((j * 7919) % 100_000));
        const event = EVENTS[j % EVENTS.length]!;
        rows.push({
          portal_id: portal.id,
          member_id: portal.member_id,
          event,
          entity_type: event.startsWith('ONCRMLEAD') ? 'lead' : 'deal',
          entity_id: entityId,
          ts: Math.floor(receivedAt / 1000),
          body: `{"event":"${event}","data":{"FIELDS":{"ID":"${entityId}"}},"auth":{"access_token":"[masked]","domain":"bench.bitrix24.com"}}`,
          status,
          source: 'online',
          attempts: status === 'received' ? 0 : 1,
          last_error:
            status === 'failed' ? `HTTP 500 from POST https://erp.example/api (${j})` : null,
          received_at: receivedAt,
          processing_started_at: status === 'received' ? null : receivedAt + 5,
          processed_at: status === 'received' ? null : receivedAt + 20 + (j % 400),
          dedupe_key: null,
        });
      }
      await trx('events').insert(rows);
    }
    const runs = Math.floor(args.events / 4);
    for (let i = 0; i < runs; i += batch) {
      const rows = [];
      for (let j = i; j < Math.min(runs, i + batch); j++) {
        const eventId = 1 + j * 4;
        rows.push({
          event_id: eventId,
          rule_name: j % 3 === 0 ? 'Lead to CRM' : 'Paid deal: invoice',
          step_index: 0,
          step_name: 'invoice',
          action_type: 'http',
          idempotency_key: `bench-${j}`,
          status: j % 25 === 0 ? 'failed' : 'succeeded',
          attempts: 1,
          started_at: now - span + Math.floor((eventId / args.events) * span),
          finished_at: now - span + Math.floor((eventId / args.events) * span) + 30,
        });
      }
      await trx('action_runs').insert(rows);
    }
  });
  process.stdout.write(
    `${args.events} events and ${Math.floor(args.events / 4)} action runs inserted in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );

  const sid = randomBytes(24).toString('base64url');
  await new Promise<void>((resolve, reject) =>
    new KnexSessionStore(deps.db, { now: () => now }).set(
      sid,
      {
        cookie: { originalMaxAge: SESSION_TTL_MS, expires: new Date(now + SESSION_TTL_MS) },
        b24: {
          portalId: portal.id,
          memberId: portal.member_id,
          userId: 1,
          isAdmin: true,
          lang: 'en',
        },
      } as never,
      (e) => (e ? reject(e as Error) : resolve()),
    ),
  );
  const cookie = `${SESSION_COOKIE}=${encodeURIComponent(signedSessionId(sid, deps.config.sessionSecret))}`;
  const server = http.createServer(buildListener(deps, { routes: [uiRoutes(deps)], fast: [] }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const page3 = args.events - 2 * 50;
  const cases: Array<[string, string, number]> = [
    ['log, no filter', '/ui/events', 200],
    ['log, page 3 (keyset)', `/ui/events?before=${page3}`, 200],
    ['log, status=failed', '/ui/events?status=failed', 200],
    ['log, event=ONCRMLEADADD', '/ui/events?event=ONCRMLEADADD', 200],
    ['log, entity id', '/ui/events?entity=4242', 200],
    ['log, yesterday', `/ui/events?from=${day(now - DAY)}&to=${day(now - DAY)}`, 200],
    [
      'log, status+event+range',
      `/ui/events?status=failed&event=ONCRMDEALUPDATE&from=${day(now - 7 * DAY)}&to=${day(now)}`,
      200,
    ],
    ['log, text "erp.example"', '/ui/events?q=erp.example', 200],
    ['dashboard', '/ui', 300],
  ];
  let failures = 0;
  process.stdout.write(
    `\n${'page'.padEnd(28)} ${'p50'.padStart(8)} ${'p95'.padStart(8)}  target\n`,
  );
  for (const [name, path, target] of cases) {
    const times: number[] = [];
    for (let i = 0; i < args.requests + 3; i++) {
      const t0 = performance.now();
      const res = await fetch(`${base}${path}`, { headers: { cookie } });
      await res.text();
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      if (i >= 3) times.push(performance.now() - t0);
    }
    const sorted = [...times].sort((a, b) => a - b);
    const p = p95(times);
    if (p > target) failures++;
    process.stdout.write(
      `${name.padEnd(28)} ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1).padStart(6)}ms ${p.toFixed(1).padStart(6)}ms  ≤ ${target} ms ${p > target ? 'MISSED' : 'ok'}\n`,
    );
  }
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await t.close();
  if (failures) process.exitCode = 1;
}
