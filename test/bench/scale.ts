import os from 'node:os';
import path from 'node:path';
import { openDb, type DbTarget } from '../../db/connect.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { eventBody } from '../helpers/event-builder.js';
import { startHttpSink } from '../helpers/http-sink.js';
import { spawnedAppEnv, startInstallHarness } from '../helpers/install-harness.js';
import {
  createTestDatabase,
  findPgBin,
  startPgCluster,
  type PgCluster,
  type TestDatabase,
} from '../helpers/pg.js';
import { seedDataDir } from '../helpers/seed-db.js';
import { tempDir } from '../helpers/temp-dir.js';
import { benchDir, fmt, runLoad, startProcess, type LoadResult } from './util.js';

/**
 * `npm run bench -- scale [--duration S] [--connections N] [--events N]`: the real server
 * (dist/server/main.js) as 1 instance on SQLite, 1 on PostgreSQL and 3 on one PostgreSQL.
 *
 * - intake: a separate load process posts distinct ~1.2 KB deliveries for `duration`
 *   seconds over `connections` keep-alive connections, split evenly over the instances;
 *   no rules, so the workers only mark the events skipped.
 * - processing: `events` deliveries of 200 emulated deals are stored first (through the
 *   intake), then the instances start and drain them: each event reads its deal from the
 *   emulator (batched read-ahead; the emulator's rate limit off, one portal's 2 req/s would
 *   be the only figure otherwise) and runs one HTTP action against a local sink.
 *
 * PostgreSQL comes from B24H_TEST_PG_URL, or a throwaway cluster with fsync on.
 */
export async function scaleBench(args: {
  durationSec: number;
  connections: number;
  events: number;
}): Promise<void> {
  let cluster: PgCluster | undefined;
  if (!process.env.B24H_TEST_PG_URL) {
    if (!findPgBin())
      throw new Error('no PostgreSQL binaries: install postgresql or set B24H_TEST_PG_URL');
    cluster = await startPgCluster({ durable: true });
    process.env.B24H_TEST_PG_URL = cluster.url;
  }
  const runs = [
    { name: 'SQLite, 1 instance', pg: false, instances: 1 },
    { name: 'PostgreSQL, 1 instance', pg: true, instances: 1 },
    { name: 'PostgreSQL, 3 instances', pg: true, instances: 3 },
  ];
  process.stdout.write(
    `${os.cpus().length} CPUs; intake: ${args.connections} connections for ${args.durationSec} s; ` +
      `processing: ${fmt(args.events)} events\n\n`,
  );
  const rows: string[] = [];
  try {
    for (const run of runs) {
      const intake = await intakeRun(run, args);
      process.stdout.write(
        `${run.name.padEnd(26)} intake ${fmt(intake.rps).padStart(6)} req/s  p99 ${intake.p99} ms  non-200 ${intake.non2xx}  stored ${fmt(intake.stored)}\n`,
      );
      const processing = await processRun(run, args.events);
      process.stdout.write(
        `${run.name.padEnd(26)} processing ${fmt(processing.eps).padStart(6)} events/s  (${fmt(processing.events)} in ${fmt(processing.seconds, 1)} s, ${processing.actions} actions)\n`,
      );
      rows.push(
        `| ${run.name} | ${fmt(intake.rps)} | ${intake.p99} | ${intake.non2xx} | ${fmt(processing.eps)} | ${fmt(processing.seconds, 1)} s |`,
      );
    }
  } finally {
    await cluster?.stop();
  }
  process.stdout.write(
    '\n| setup | intake req/s | intake p99 ms | non-200 | processing events/s | drain |\n|---|---|---|---|---|---|\n' +
      rows.join('\n') +
      '\n',
  );
}

const mainJs = path.join(benchDir, '..', '..', 'server', 'main.js');

async function intakeRun(
  run: { pg: boolean; instances: number },
  args: { durationSec: number; connections: number },
): Promise<LoadResult & { stored: number }> {
  const tmp = tempDir('b24hooks-bench-');
  const seeded = await seedDataDir(path.join(tmp.dir, 'data'), { pg: run.pg });
  const body = eventBody({
    portal: seeded.portal,
    id: '__ID__',
    accessToken: 'a'.repeat(70),
    data: { FIELDS: { ID: '__ID__' } },
  }).replace('ts=1764237600', `ts=1764237600&data%5BFIELDS%5D%5BCOMMENT%5D=${'x'.repeat(560)}`);
  const env = { ...seeded.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
  const procs = await Promise.all(
    Array.from({ length: run.instances }, () => startProcess([mainJs], env)),
  );
  try {
    const per = Math.max(1, Math.round(args.connections / run.instances));
    const results = await Promise.all(
      procs.map((p) =>
        runLoad({
          url: `${p.url}/b24/events`,
          connections: per,
          durationSec: args.durationSec,
          newConnectionPerRequest: false,
          body,
          contentType: 'application/x-www-form-urlencoded',
        }),
      ),
    );
    const sum = (f: (r: LoadResult) => number) => results.reduce((s, r) => s + f(r), 0);
    const stored = await countEvents(seeded.target);
    return {
      requests: sum((r) => r.requests),
      rps: sum((r) => r.rps),
      p50: Math.max(...results.map((r) => r.p50)),
      p99: Math.max(...results.map((r) => r.p99)),
      non2xx: sum((r) => r.non2xx),
      errors: sum((r) => r.errors),
      timeouts: sum((r) => r.timeouts),
      stored,
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await seeded.drop();
    tmp.cleanup();
  }
}

async function countEvents(target: DbTarget, where: Record<string, unknown> = {}) {
  const db = openDb(target);
  try {
    return Number((await db('events').where(where).count({ n: '*' }).first())?.n);
  } finally {
    await db.destroy();
  }
}

async function processRun(
  run: { pg: boolean; instances: number },
  events: number,
): Promise<{ events: number; seconds: number; eps: number; actions: number }> {
  const DEALS = 200;
  const sink = await startHttpSink(() => ({ status: 200, body: { ok: true } }));
  let pgDb: TestDatabase | undefined;
  if (run.pg) pgDb = await createTestDatabase({ template: null });
  const h = await startInstallHarness(pgDb ? { DATABASE_URL: pgDb.url } : {});
  try {
    const portal = await h.addPortal();
    if ((await portal.install()).status !== 200) throw new Error('install failed');
    const deals: string[] = [];
    for (let i = 0; i < DEALS; i++)
      deals.push((await portal.addDeal({ TITLE: `D${i}`, STAGE_ID: 'WON' })).id);
    await saveRuleMap(
      h.t.deps.db,
      undefined,
      {
        rules: [
          {
            name: 'every update',
            on: ['ONCRMDEALUPDATE'],
            when: [{ field: 'STAGE_ID', equals: 'WON' }],
            actions: [
              {
                type: 'http',
                method: 'POST',
                url: `${sink.url}/noop`,
                body: { id: '{{deal.ID}}' },
              },
            ],
          },
        ],
      },
      h.t.clock.now(),
    );
    // The backlog, through the harness's intake (its worker never runs).
    const who = {
      memberId: portal.memberId,
      domain: portal.domain,
      applicationToken: portal.applicationToken,
    };
    for (let at = 0; at < events; at += 200) {
      await Promise.all(
        Array.from({ length: Math.min(200, events - at) }, (_, k) =>
          fetch(`${h.appUrl}/b24/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: eventBody({ portal: who, id: deals[(at + k) % DEALS]!, ts: 1764237600 + at + k }),
          }).then((r) => {
            if (r.status !== 200) throw new Error(`intake answered ${r.status}`);
          }),
        ),
      );
    }
    await h.services.intake.drain();
    const config = h.t.deps.config;
    await h.stopApp();
    // Stored on the harness's manual clock: an hour from real now, as a real install stores.
    await h.t.deps.db('portals').update({ token_expires_at: Date.now() + 3600_000 });
    const env = {
      ...spawnedAppEnv(h, h.t.dir),
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...h.t.dbEnv,
    };
    const sentBefore = sink.requests.length;
    // The harness's connection lets go (SQLite: of the file); the bench watches on its own.
    await h.t.deps.close();
    const watch = openDb(config.database);
    const procs = await Promise.all(
      Array.from({ length: run.instances }, () => startProcess([mainJs], env)),
    );
    try {
      const count = () => countBacklog(watch);
      const t0 = performance.now();
      const start = await count();
      for (;;) {
        if ((await count()) === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const seconds = (performance.now() - t0) / 1000;
      return {
        events: start,
        seconds,
        eps: start / seconds,
        actions: sink.requests.length - sentBefore,
      };
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
      await watch.destroy();
    }
  } finally {
    await h.close().catch(() => undefined);
    await sink.close();
    await pgDb?.drop();
  }
}

async function countBacklog(db: ReturnType<typeof openDb>): Promise<number> {
  return Number(
    (
      await db('events')
        .where('event', 'ONCRMDEALUPDATE')
        .whereIn('status', ['received', 'processing'])
        .count({ n: '*' })
        .first()
    )?.n,
  );
}
