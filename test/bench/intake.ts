import path from 'node:path';
import { openDb } from '../../db/connect.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { startHttpSink } from '../helpers/http-sink.js';
import { tempDir } from '../helpers/temp-dir.js';
import { seedDataDir } from '../helpers/seed-db.js';
import { storedAdminSession } from '../helpers/stored-session.js';
import { eventBody } from '../helpers/event-builder.js';
import { benchDir, fmt, loopDelay, runLoad, startProcess, type LoadResult } from './util.js';

/** A realistic delivery, padded to about 1.2 KB as a deal update with a long token set. */
function benchDelivery(portal: Parameters<typeof eventBody>[0]['portal'], event: string): string {
  return eventBody({
    portal,
    event,
    id: '__ID__',
    accessToken: 'a'.repeat(70),
    data: { FIELDS: { ID: '__ID__' } },
  }).replace('ts=1764237600', `ts=1764237600&data%5BFIELDS%5D%5BCOMMENT%5D=${'x'.repeat(560)}`);
}

/**
 * `npm run bench -- intake`: requests/s, p50 and p99 of (a) a bare node:http server (the
 * ceiling), (b) a plain Express 5 handler with urlencoded({extended:true}) (the naive
 * baseline) and (c) our events handler with full verification and durable storage, each
 * loaded in turn by a separate process with 50 connections for 10 s, with keep-alive and
 * with a new connection per request.
 */
export async function intakeBench(args: {
  durationSec: number;
  connections: number;
  /** Load on each server before its measured run, not counted (JIT, caches, the file's first pages). */
  warmupSec: number;
  /** Length of the "everything on" run (0 skips it). */
  allOnSec: number;
  /** (d) without the rule: the worker finishes every delivery as skipped, with no network. */
  allOnWithoutRule?: boolean;
  /** The keep-alive load generator (load.ts): `lean` by default, or `autocannon`. */
  client?: 'lean' | 'autocannon';
}): Promise<void> {
  const tmp = tempDir('b24hooks-bench-');
  const { env, portal } = await seedDataDir(path.join(tmp.dir, 'data'));
  const body = benchDelivery(portal, 'ONCRMDEALUPDATE');
  process.stdout.write(
    `delivery body: ${body.length} bytes; ${args.connections} connections, ${args.durationSec} s per run after ${args.warmupSec} s of warm-up; keep-alive client: ${args.client ?? 'lean'}\n\n`,
  );

  const servers: Array<{
    name: string;
    args: string[];
    env?: Record<string, string>;
    path: string;
  }> = [
    {
      name: '(a) bare node:http',
      args: [path.join(benchDir, 'servers', 'bare.js')],
      path: '/b24/events',
    },
    {
      name: '(b) naive Express 5',
      args: [path.join(benchDir, 'servers', 'express-naive.js')],
      path: '/b24/events',
    },
    {
      name: '(c) b24hooks intake',
      args: [path.join(benchDir, '..', '..', 'server', 'main.js')],
      env: { ...env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      path: '/b24/events',
    },
  ];
  const results: Record<string, Record<string, LoadResult>> = {};
  for (const mode of ['keep-alive', 'new connection per request'] as const) {
    results[mode] = {};
    for (const s of servers) {
      const proc = await startProcess(s.args, s.env);
      try {
        const load = (durationSec: number) =>
          runLoad({
            url: proc.url + s.path,
            connections: args.connections,
            durationSec,
            newConnectionPerRequest: mode !== 'keep-alive',
            body,
            contentType: 'application/x-www-form-urlencoded',
            client: args.client,
          });
        if (args.warmupSec > 0) await load(args.warmupSec);
        const r = await load(args.durationSec);
        results[mode]![s.name] = r;
        process.stdout.write(
          `${mode.padEnd(27)} ${s.name.padEnd(22)} ${fmt(r.rps).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  non-200 ${r.non2xx}\n`,
        );
      } finally {
        await proc.stop();
      }
    }
  }
  const db = openDb({ client: 'sqlite', filename: path.join(tmp.dir, 'data', 'b24hooks.sqlite') });
  const stored = Number((await db('events').count({ n: '*' }).first())?.n);
  await db.destroy();
  tmp.cleanup();

  process.stdout.write(
    '\n| connections | server | req/s | p50 ms | p99 ms | non-200 |\n|---|---|---|---|---|---|\n',
  );
  for (const [mode, byServer] of Object.entries(results)) {
    for (const [name, r] of Object.entries(byServer)) {
      process.stdout.write(
        `| ${mode} | ${name} | ${fmt(r.rps)} | ${r.p50} | ${r.p99} | ${r.non2xx} |\n`,
      );
    }
    const a = byServer['(a) bare node:http']!;
    const b = byServer['(b) naive Express 5']!;
    const c = byServer['(c) b24hooks intake']!;
    process.stdout.write(
      `| ${mode} | ratios | c/a = ${fmt(c.rps / a.rps, 2)} | c/b = ${fmt(c.rps / b.rps, 2)} | | |\n`,
    );
  }
  process.stdout.write(`\nevents durably stored by (c) over both runs: ${fmt(stored)}\n`);
  if (args.allOnSec > 0) {
    const b = results['keep-alive']!['(b) naive Express 5']!;
    await everythingOn(args, b);
  }
}

/**
 * (d) "everything on" (test/bench/README.md#intake): the intake under keep-alive load while the
 * worker processes every delivery with a rule whose HTTP step posts to a local stand-in, and the
 * alert monitor and heartbeat run as in production. Deals deleted (ONCRMDEALDELETE) need no REST
 * read, so the work is the worker's own: claims, outcome writes, the HTTP step.
 */
async function everythingOn(args: Parameters<typeof intakeBench>[0], b: LoadResult) {
  const { allOnSec: durationSec, warmupSec, connections } = args;
  const withRule = !args.allOnWithoutRule;
  const tmp = tempDir('b24hooks-bench-');
  const standin = await startHttpSink();
  const { env, portal } = await seedDataDir(path.join(tmp.dir, 'data'));
  const db = openDb({ client: 'sqlite', filename: path.join(tmp.dir, 'data', 'b24hooks.sqlite') });
  if (withRule) {
    await saveRuleMap(
      db,
      undefined,
      {
        rules: [
          {
            name: 'deleted deal to the stand-in',
            on: ['ONCRMDEALDELETE'],
            actions: [{ type: 'http', method: 'POST', url: `${standin.url}/hook`, body: {} }],
          },
        ],
      },
      new Date(),
    );
  }
  // The same size as (a)–(c)'s, so that c/b compares like with like.
  const body = benchDelivery(portal, 'ONCRMDEALDELETE');
  const proc = await startProcess([path.join(benchDir, '..', '..', 'server', 'main.js')], {
    ...env,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ACTION_PRIVATE_HOSTS: '127.0.0.1',
  });
  // The readers beside the load (test/bench/README.md): 5 dashboard views a second (an admin's session)
  // and a /metrics scrape every 5 s; each scrape closes a loop-delay window, the worst is kept.
  const row = (await db('portals').where({ member_id: portal.memberId }).first('id')) as {
    id: number;
  };
  const cookie = await storedAdminSession(db, env.SESSION_SECRET!, {
    id: Number(row.id),
    memberId: portal.memberId,
  });
  const windows: number[] = [];
  const views: number[] = [];
  let viewErrors = 0;
  const view = async () => {
    const t0 = performance.now();
    const res = await fetch(`${proc.url}/ui`, { headers: { cookie } });
    await res.text();
    if (res.status === 200) views.push(performance.now() - t0);
    else viewErrors++;
  };
  let r: LoadResult;
  let eld: number;
  const pending: Promise<unknown>[] = [];
  let timers: NodeJS.Timeout[] = [];
  const load = (seconds: number) =>
    runLoad({
      url: `${proc.url}/b24/events`,
      connections,
      durationSec: seconds,
      newConnectionPerRequest: false,
      body,
      contentType: 'application/x-www-form-urlencoded',
      client: args.client,
    });
  try {
    timers = [setInterval(() => pending.push(view().catch(() => viewErrors++)), 200)];
    // The same warm-up as (a)–(c), readers included; neither its views nor its loop delay count.
    if (warmupSec > 0) await load(warmupSec);
    await Promise.all(pending.splice(0));
    views.length = 0;
    viewErrors = 0;
    await loopDelay(proc.url); // starts a fresh window
    timers.push(
      setInterval(() => pending.push(loopDelay(proc.url).then((x) => windows.push(x.p99))), 5000),
    );
    r = await load(durationSec);
    for (const x of timers) clearInterval(x);
    await Promise.all(pending);
    windows.push((await loopDelay(proc.url)).p99);
    eld = Math.max(...windows);
  } finally {
    for (const x of timers) clearInterval(x);
    await proc.stop();
  }
  views.sort((x, y) => x - y);
  const p95 = views[Math.floor(views.length * 0.95)] ?? NaN;
  const counts = (await db('events')
    .groupBy('status')
    .select('status')
    .count({ n: '*' })) as Array<{
    status: string;
    n: number | string;
  }>;
  await db.destroy();
  await standin.close();
  tmp.cleanup();
  const by = Object.fromEntries(counts.map((c) => [c.status, Number(c.n)]));
  process.stdout.write(
    `\n(d) everything on${withRule ? '' : ', no rule (every delivery skipped)'}, keep-alive, ${durationSec} s: ${fmt(r.rps)} req/s  p50 ${r.p50} ms  ` +
      `p99 ${r.p99} ms  event-loop delay p99 ${fmt(eld, 1)} ms  non-200 ${r.non2xx}  ` +
      `c/b = ${fmt(r.rps / b.rps, 2)}\n` +
      `    events: ${JSON.stringify(by)}; HTTP steps sent to the stand-in: ${fmt(standin.requests.length)}\n` +
      `    readers: ${views.length} dashboard views (p95 ${fmt(p95, 1)} ms, ${viewErrors} not 200), ` +
      `${windows.length} /metrics scrapes; loop delay p99 is the worst of their windows; ` +
      `target p99 ≤ 15 ms ${r.p99 <= 15 ? 'ok' : 'MISSED'}, c/b ≥ 1.5 ${r.rps / b.rps >= 1.5 ? 'ok' : 'MISSED'}\n`,
  );
}
