import http from 'node:http';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { openDb } from '../../db/connect.js';
import { eventBody } from '../helpers/event-builder.js';
import { seedDataDir } from '../helpers/seed-db.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The intake promise: a delivery answered 200 is on disk. Flood the real server, SIGKILL it
 * mid-flood, restart it, and look for every acknowledged delivery.
 */
describe('intake under SIGKILL', () => {
  const tmp = tempDir();
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
    tmp.cleanup();
  });

  it('keeps every delivery it acknowledged', async () => {
    const dataDir = path.join(tmp.dir, 'data');
    const { env, portal, target, drop } = await seedDataDir(dataDir);
    cleanups.push(drop);
    const server = await spawnServer(env);
    const url = new URL('/b24/events', server.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const acked: number[] = [];
    let sent = 0;
    let killed = false;

    const postOne = (id: number) =>
      new Promise<void>((resolve) => {
        const body = eventBody({ portal, id, ts: 1764237600 + id });
        const req = http.request(
          url,
          {
            method: 'POST',
            agent,
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              'content-length': Buffer.byteLength(body),
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) acked.push(id);
              resolve();
            });
            res.on('error', () => resolve());
          },
        );
        req.on('error', () => resolve());
        req.end(body);
      });

    const workers = Array.from({ length: 32 }, async () => {
      while (!killed) {
        const id = ++sent;
        await postOne(id);
      }
    });
    // Kill once a good number have been acknowledged, while requests are in flight.
    while (acked.length < 1500) await new Promise((r) => setTimeout(r, 5));
    server.proc.kill('SIGKILL');
    killed = true;
    await Promise.all(workers);
    agent.destroy();
    await new Promise((r) => server.proc.once('exit', r)).catch(() => undefined);

    const restarted = await spawnServer(env);
    await restarted.stop();
    const db = openDb(target);
    const stored = new Set(
      ((await db('events').select('entity_id')) as { entity_id: string }[]).map((r) =>
        Number(r.entity_id),
      ),
    );
    const jobs = Number((await db('jobs').count({ n: '*' }).first())?.n);
    await db.destroy();
    const lost = acked.filter((id) => !stored.has(id));
    process.stdout.write(
      `intake crash: sent ${sent}, acknowledged ${acked.length}, stored ${stored.size}, lost ${lost.length}\n`,
    );
    expect(acked.length).toBeGreaterThanOrEqual(1500);
    expect(lost).toEqual([]);
    expect(jobs).toBe(stored.size);
  });
});
