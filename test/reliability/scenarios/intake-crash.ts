import http from 'node:http';
import path from 'node:path';
import { openDb } from '../../../db/connect.js';
import { seedDataDir } from '../../helpers/seed-db.js';
import { spawnServer, type SpawnedServer } from '../../helpers/spawn-server.js';
import { tempDir } from '../../helpers/temp-dir.js';
import { BASE_TS, dealUpdate, fmt, postDelivery, sleep } from '../lib/deliveries.js';
import type { ReliabilityContext, Row, Scenario } from '../types.js';

/**
 * The intake promise: a delivery answered 200 is on disk. The real server is flooded by 32
 * keep-alive connections and SIGKILLed mid-flood (requests in flight, batches being
 * written); after each kill it is started again on the same data and the flood goes on.
 * Finally every acknowledged delivery is looked up in the database.
 */
export const scenario: Scenario = async (ctx: ReliabilityContext): Promise<Row[]> => {
  const full = ctx.scale === 'full';
  /** Acknowledgements to collect before each kill. */
  const perKill = full ? 10_000 : 1500;
  const kills = full ? 3 : 1;
  const tmp = tempDir('b24hooks-reliability-');
  const dataDir = path.join(tmp.dir, 'data');
  ctx.dataDirs.push(tmp.dir);
  const { env, portal } = await seedDataDir(dataDir);
  ctx.issuedTokens.add(portal.applicationToken);
  const serverEnv = { ...env, LOG_LEVEL: 'warn' };
  const keep = (s: SpawnedServer) => ctx.logs.push(s.stdout(), s.stderr());

  const acked: number[] = [];
  let sent = 0;
  const started = performance.now();
  for (let k = 0; k < kills; k++) {
    const server = await spawnServer(serverEnv);
    const url = new URL('/b24/events', server.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const goal = acked.length + perKill;
    let killed = false;
    const senders = Array.from({ length: 32 }, async () => {
      while (!killed) {
        const n = ++sent;
        const answer = await postDelivery(url, dealUpdate(portal, (n % 5000) + 1, n), agent);
        if (answer.status === 200) acked.push(n);
        else if (answer.status !== 0) ctx.pages.push(answer.body);
      }
    });
    while (acked.length < goal && performance.now() - started < 300_000) await sleep(5);
    server.proc.kill('SIGKILL');
    killed = true;
    await Promise.all(senders);
    agent.destroy();
    await new Promise((r) =>
      server.proc.exitCode !== null ? r(null) : server.proc.once('exit', r),
    );
    keep(server);
  }

  // Start once more: the server must come up on what the kills left, and keep it all.
  const restarted = await spawnServer(serverEnv);
  await restarted.stop();
  keep(restarted);
  const db = openDb({ client: 'sqlite', filename: path.join(dataDir, 'b24hooks.sqlite') });
  try {
    const rows = (await db('events').select('ts')) as { ts: number }[];
    const stored = new Set(rows.map((r) => Number(r.ts) - BASE_TS));
    const withoutJob = Number(
      (
        (await db('events as e')
          .leftJoin('jobs as j', 'j.event_id', 'e.id')
          .whereNull('j.id')
          .count({ n: '*' })
          .first()) as { n: number }
      ).n,
    );
    const lost = acked.filter((n) => !stored.has(n)).length;
    const inFlight = stored.size - (acked.length - lost);
    return [
      {
        area: 'Crash',
        check: `SIGKILL during intake under load (32 connections, ${kills} kill${kills > 1 ? 's' : ''})`,
        measured:
          `sent ${fmt(sent)} · acknowledged ${fmt(acked.length)} · stored ${fmt(stored.size)}` +
          ` (${fmt(inFlight)} unanswered at the kill) · lost ${lost} · events without a job ${withoutJob}`,
        expected: 'lost 0, every stored event has its job',
        pass: acked.length >= perKill * kills && lost === 0 && withoutJob === 0,
      },
    ];
  } finally {
    await db.destroy();
  }
};
