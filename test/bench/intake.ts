import path from 'node:path';
import { openDb } from '../../db/connect.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { startHttpSink } from '../helpers/http-sink.js';
import { tempDir } from '../helpers/temp-dir.js';
import { seedDataDir } from '../helpers/seed-db.js';
import { storedAdminSession } from '../helpers/stored-session.js';
import { eventBody } from '../helpers/event-builder.js';
import {
  benchDir,
  fmt,
  loopDelay,
  runLoad,
  statementFigures,
  startProcess,
  type LoadResult,
} from './util.js';

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
  /**
   * Keep-alive pairs of (b) and (c), alternating which goes first: c/b is judged on their
   * median, and every pair is printed (the machine drifts by more than a pair's difference).
   */
  rounds?: number;
  /** Length of the "everything on" run (0 skips it). */
  allOnSec: number;
  /** (d) without the rule: the worker finishes every delivery as skipped, with no network. */
  allOnWithoutRule?: boolean;
  /** The keep-alive load generator (load.ts): `lean` by default, or `autocannon`. */
  client?: 'lean' | 'autocannon';
}): Promise<void> {
  const rounds = Math.max(1, Math.floor(args.rounds ?? 3));
  const tmp = tempDir('b24hooks-bench-');
  const { env, portal } = await seedDataDir(path.join(tmp.dir, 'data'));
  const body = benchDelivery(portal, 'ONCRMDEALUPDATE');
  process.stdout.write(
    `delivery body: ${body.length} bytes; ${args.connections} connections, ${args.durationSec} s per run after ${args.warmupSec} s of warm-up; keep-alive client: ${args.client ?? 'lean'}; ${rounds} keep-alive round(s) of (b) and (c)\n\n`,
  );

  const servers = {
    a: { name: '(a) bare node:http', args: [path.join(benchDir, 'servers', 'bare.js')] },
    b: { name: '(b) naive Express 5', args: [path.join(benchDir, 'servers', 'express-naive.js')] },
  } satisfies Record<string, BenchServer>;
  // Each run of (c) starts on a file of its own, as a single run did: on one file each pair
  // would meet a larger database than the last (about 100,000 rows more), which slows it.
  const dataDirs: string[] = [];
  const freshC = async (): Promise<BenchServer & { body: string }> => {
    const dir =
      dataDirs.length === 0
        ? path.join(tmp.dir, 'data')
        : path.join(tmp.dir, `data-${dataDirs.length}`);
    const seeded = dataDirs.length === 0 ? { env, portal } : await seedDataDir(dir);
    dataDirs.push(dir);
    return {
      name: '(c) b24hooks intake',
      args: [path.join(benchDir, '..', '..', 'server', 'main.js')],
      env: { ...seeded.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      body: benchDelivery(seeded.portal, 'ONCRMDEALUPDATE'),
    };
  };
  const cName = '(c) b24hooks intake';
  const measure = async (s: BenchServer & { body?: string }, mode: Mode): Promise<LoadResult> => {
    const r = await measureServer(s, mode, s.body ?? body, args);
    process.stdout.write(
      `${mode.padEnd(27)} ${s.name.padEnd(22)} ${fmt(r.rps).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  non-200 ${r.non2xx}\n`,
    );
    return r;
  };

  // Keep-alive: (a) once, then the pairs of (b) and (c), alternating which goes first.
  const a = await measure(servers.a, 'keep-alive');
  const pairs: Array<{ b: LoadResult; c: LoadResult }> = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      const b = await measure(servers.b, 'keep-alive');
      pairs.push({ b, c: await measure(await freshC(), 'keep-alive') });
    } else {
      const c = await measure(await freshC(), 'keep-alive');
      pairs.push({ b: await measure(servers.b, 'keep-alive'), c });
    }
  }
  const mode2 = 'new connection per request';
  const fresh = {
    a: await measure(servers.a, mode2),
    b: await measure(servers.b, mode2),
    c: await measure(await freshC(), mode2),
  };
  let stored = 0;
  for (const dir of dataDirs) {
    const db = openDb({ client: 'sqlite', filename: path.join(dir, 'b24hooks.sqlite') });
    stored += Number((await db('events').count({ n: '*' }).first())?.n);
    await db.destroy();
  }
  tmp.cleanup();

  process.stdout.write(
    '\n| connections | server | req/s | p50 ms | p99 ms | non-200 |\n|---|---|---|---|---|---|\n',
  );
  const line = (mode: string, name: string, r: LoadResult) =>
    process.stdout.write(
      `| ${mode} | ${name} | ${fmt(r.rps)} | ${r.p50} | ${r.p99} | ${r.non2xx} |\n`,
    );
  line('keep-alive', servers.a.name, a);
  pairs.forEach((p, i) => {
    const tag = rounds > 1 ? ` #${i + 1}` : '';
    line('keep-alive', servers.b.name + tag, p.b);
    line('keep-alive', cName + tag, p.c);
  });
  const ratios = pairs.map((p) => p.c.rps / p.b.rps);
  const cb = median(ratios);
  const cMedian = median(pairs.map((p) => p.c.rps));
  process.stdout.write(
    `| keep-alive | ratios | c/a = ${fmt(cMedian / a.rps, 2)} (median (c)) | c/b = ${fmt(cb, 2)} ` +
      `(median of ${rounds} pair(s): ${ratios.map((x) => fmt(x, 2)).join(', ')}) | | |\n`,
  );
  line(mode2, servers.a.name, fresh.a);
  line(mode2, servers.b.name, fresh.b);
  line(mode2, cName, fresh.c);
  process.stdout.write(
    `| ${mode2} | ratios | c/a = ${fmt(fresh.c.rps / fresh.a.rps, 2)} | c/b = ${fmt(fresh.c.rps / fresh.b.rps, 2)} | | |\n`,
  );
  process.stdout.write(
    `\nevents durably stored by (c) over all its runs: ${fmt(stored)}\n` +
      `keep-alive targets: c/a ≥ 0.2 ${cMedian / a.rps >= 0.2 ? 'ok' : 'MISSED'}, ` +
      `c/b ≥ 1.5 ${cb >= 1.5 ? 'ok' : 'MISSED'} (median), ` +
      `p99 ≤ 15 ms ${pairs.every((p) => p.c.p99 <= 15) ? 'ok' : 'MISSED'} (every run of (c))\n`,
  );
  if (args.allOnSec > 0) {
    await everythingOn(args, () => measure(servers.b, 'keep-alive'));
  }
}

type Mode = 'keep-alive' | 'new connection per request';
interface BenchServer {
  name: string;
  args: string[];
  env?: Record<string, string>;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Starts a server, loads it for the warm-up and then the measured run, stops it. */
async function measureServer(
  s: BenchServer,
  mode: Mode,
  body: string,
  args: Parameters<typeof intakeBench>[0],
): Promise<LoadResult> {
  const proc = await startProcess(s.args, s.env);
  try {
    const load = (durationSec: number) =>
      runLoad({
        url: `${proc.url}/b24/events`,
        connections: args.connections,
        durationSec,
        newConnectionPerRequest: mode !== 'keep-alive',
        body,
        contentType: 'application/x-www-form-urlencoded',
        client: args.client,
      });
    if (args.warmupSec > 0) await load(args.warmupSec);
    return await load(args.durationSec);
  } finally {
    await proc.stop();
  }
}

/**
 * (d) "everything on" (test/bench/README.md#intake): the intake under keep-alive load while the
 * worker processes every delivery with a rule whose HTTP step posts to a local stand-in, and the
 * alert monitor and heartbeat run as in production. Deals deleted (ONCRMDEALDELETE) need no REST
 * read, so the work is the worker's own: claims, outcome writes, the HTTP step.
 */
async function everythingOn(
  args: Parameters<typeof intakeBench>[0],
  baseline: () => Promise<LoadResult>,
) {
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
  // (d)'s c/b is against (b) run just before and just after it (their mean): minutes earlier,
  // the machine may have been in another state.
  const before = await baseline();
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
  let sql: Awaited<ReturnType<typeof statementFigures>>;
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
    sql = await statementFigures(proc.url);
  } finally {
    for (const x of timers) clearInterval(x);
    await proc.stop();
  }
  const after = await baseline();
  const b = { rps: (before.rps + after.rps) / 2 };
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
      `c/b = ${fmt(r.rps / b.rps, 2)} ((b) ${fmt(before.rps)} before, ${fmt(after.rps)} after)\n` +
      `    events: ${JSON.stringify(by)}; HTTP steps sent to the stand-in: ${fmt(standin.requests.length)}\n` +
      `    readers: ${views.length} dashboard views (p95 ${fmt(p95, 1)} ms, ${viewErrors} not 200), ` +
      `${windows.length} /metrics scrapes; loop delay p99 is the worst of their windows\n` +
      `    main-thread SQL (the whole run, warm-up included): ${fmt(sql.count)} statements, ${fmt(sql.ms)} ms in all, ` +
      `${fmt(sql.over5ms)} over 5 ms, ${fmt(sql.over10ms)} over 10 ms; ` +
      `target p99 ≤ 15 ms ${r.p99 <= 15 ? 'ok' : 'MISSED'}, c/b ≥ 1.5 ${r.rps / b.rps >= 1.5 ? 'ok' : 'MISSED'}\n`,
  );
}
