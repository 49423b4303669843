import path from 'node:path';
import { openDb } from '../../db/connect.js';
import { generateEvents } from '../helpers/bulk-events.js';
import { eventBody } from '../helpers/event-builder.js';
import { seedDataDir } from '../helpers/seed-db.js';
import { tempDir } from '../helpers/temp-dir.js';
import { benchDir, fmt, loopDelay, runLoad, startProcess, type LoadResult } from './util.js';

const DAY = 86_400_000;
/** The server's first background prune starts this long after it (server/retention/index.ts). */
const FIRST_PASS_MS = 60_000;

/**
 * `npm run bench -- prune [--rows N] [--connections C]`: intake p99 of the real server
 * (dist/server/main.js, SQLite) while its background retention prunes N old events (default
 * 1,000,000), against the same server and load before the prune starts.
 */
export async function pruneBench(args: { rows: number; connections: number }): Promise<void> {
  const tmp = tempDir('b24hooks-bench-');
  const dataDir = path.join(tmp.dir, 'data');
  const { env, portal } = await seedDataDir(dataDir, { pg: false });
  const db = openDb({ client: 'sqlite', filename: path.join(dataDir, 'b24hooks.sqlite') });
  const row = (await db('portals').where('member_id', portal.memberId).first()) as { id: number };
  const t0 = Date.now();
  await generateEvents(db, [
    {
      portalId: row.id,
      memberId: portal.memberId,
      status: 'processed',
      receivedAt: Date.now() - 60 * DAY,
      count: args.rows,
    },
  ]);
  await db.destroy();
  process.stdout.write(
    `generated ${fmt(args.rows)} processed events 60 days old in ${fmt((Date.now() - t0) / 1000, 1)} s\n`,
  );

  const body = eventBody({ portal, id: '__ID__', data: { FIELDS: { ID: '__ID__' } } });
  const started = Date.now();
  const proc = await startProcess([path.join(benchDir, '..', '..', 'server', 'main.js')], {
    ...env,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    RETENTION_DAYS: '30',
  });
  const seen: {
    prune?: { ms: number; tables: Record<string, number>; vacuumedPages?: number };
  } = {};
  /** The server's log line of its finished pass (read through a call: the stream sets it). */
  const pruned = () => seen.prune;
  let out = '';
  proc.proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
    for (const line of out.split('\n')) {
      if (!line.includes('retention: pruned old data')) continue;
      seen.prune ??= JSON.parse(line) as NonNullable<typeof seen.prune>;
    }
    out = out.slice(out.lastIndexOf('\n') + 1);
  });
  const load = (durationSec: number) =>
    runLoad({
      url: `${proc.url}/b24/events`,
      connections: args.connections,
      durationSec,
      newConnectionPerRequest: false,
      body,
      contentType: 'application/x-www-form-urlencoded',
    });
  const delay = async () => {
    const d = await loopDelay(proc.url);
    return `loop delay p99 ${Math.round(d.p99)} ms, max ${Math.round(d.max)} ms`;
  };
  const line = async (name: string, r: LoadResult) =>
    process.stdout.write(
      `${name.padEnd(28)} ${fmt(r.rps).padStart(7)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  non-200 ${r.non2xx}  ${await delay()}\n`,
    );
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
  const summary = (rs: LoadResult[]) =>
    `p99 median ${median(rs.map((r) => r.p99))} ms, worst ${Math.max(...rs.map((r) => r.p99))} ms; ` +
    `${fmt(median(rs.map((r) => r.rps)))} req/s median; non-200 ${rs.reduce((n, r) => n + r.non2xx, 0)}`;
  try {
    await load(3); // warm-up
    await loopDelay(proc.url); // starts the first window
    // Windows of the same load on the same server: before its first pass, then during it.
    const before: LoadResult[] = [];
    while (Date.now() < started + FIRST_PASS_MS - 7000) {
      const r = await load(5);
      before.push(r);
      await line(`before ${before.length} (5 s)`, r);
    }
    if (pruned()) throw new Error('the prune ended before the load on it started');
    while (Date.now() < started + FIRST_PASS_MS) await new Promise((r) => setTimeout(r, 100));
    const during: LoadResult[] = [];
    while (!pruned() && during.length < 240) {
      const r = await load(5);
      during.push(r);
      await line(`during ${during.length} (5 s)`, r);
    }
    const pruneLog = pruned();
    if (!pruneLog) throw new Error('the prune did not finish within 20 minutes of load');
    process.stdout.write(
      `\nprune: ${fmt(pruneLog.tables.events ?? 0)} events in ${fmt(pruneLog.ms / 1000, 1)} s under load, ` +
        `${fmt(pruneLog.vacuumedPages ?? 0)} pages given back to the file system\n` +
        `intake without pruning (${before.length} windows): ${summary(before)}\n` +
        `intake during the prune (${during.length} windows): ${summary(during)}\n`,
    );
  } finally {
    await proc.stop();
    tmp.cleanup();
  }
}
