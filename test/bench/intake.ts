import path from 'node:path';
import { openDb } from '../../db/connect.js';
import { tempDir } from '../helpers/temp-dir.js';
import { seedDataDir } from '../helpers/seed-db.js';
import { eventBody } from '../helpers/event-builder.js';
import { benchDir, fmt, runLoad, startProcess, type LoadResult } from './util.js';

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
}): Promise<void> {
  const tmp = tempDir('b24hooks-bench-');
  const { env, portal } = await seedDataDir(path.join(tmp.dir, 'data'));
  // A realistic delivery, padded to about 1.2 KB as a deal update with a long token set.
  const body = eventBody({
    portal,
    id: '__ID__',
    accessToken: 'a'.repeat(70),
    data: { FIELDS: { ID: '__ID__' } },
  }).replace('ts=1764237600', `ts=1764237600&data%5BFIELDS%5D%5BCOMMENT%5D=${'x'.repeat(560)}`);
  process.stdout.write(
    `delivery body: ${body.length} bytes; ${args.connections} connections, ${args.durationSec} s per run\n\n`,
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
        const r = await runLoad({
          url: proc.url + s.path,
          connections: args.connections,
          durationSec: args.durationSec,
          newConnectionPerRequest: mode !== 'keep-alive',
          body,
          contentType: 'application/x-www-form-urlencoded',
        });
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
}
