import { afterAll, describe, expect, it } from '@jest/globals';
import { openDb } from '../../db/connect.js';
import { saveRuleMap } from '../../db/stores/rules.js';
import { eventBody } from '../helpers/event-builder.js';
import { startHttpSink } from '../helpers/http-sink.js';
import { startInstallHarness } from '../helpers/install-harness.js';
import { spawnServer } from '../helpers/spawn-server.js';

/**
 * SIGKILL during processing, then restart: every event ends terminal and no step that was
 * recorded as succeeded is sent again (a step in flight at the kill may be sent again, with
 * the same Idempotency-Key, which is what receivers dedupe on).
 */
describe('processing under SIGKILL', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('finishes every event after a restart without repeating a succeeded step', async () => {
    // Two real server processes and 60 deals: allow for a loaded CI machine.
    const sink = await startHttpSink(() => ({ status: 200, body: { ok: true }, delayMs: 15 }));
    cleanups.push(() => sink.close());
    const h = await startInstallHarness();
    cleanups.push(() => h.emu.close());
    const portal = await h.addPortal();
    expect((await portal.install()).status).toBe(200);
    const deals: string[] = [];
    for (let i = 0; i < 60; i++)
      deals.push((await portal.addDeal({ TITLE: `D${i}`, STAGE_ID: 'WON' })).id);
    await saveRuleMap(
      h.t.deps.db,
      undefined,
      {
        rules: [
          {
            name: 'won',
            on: ['ONCRMDEALUPDATE'],
            when: [{ field: 'STAGE_ID', equals: 'WON' }],
            actions: [
              {
                type: 'http',
                name: 'a',
                method: 'POST',
                url: `${sink.url}/a`,
                body: { id: '{{deal.ID}}' },
              },
              {
                type: 'http',
                name: 'b',
                method: 'POST',
                url: `${sink.url}/b`,
                body: { id: '{{deal.ID}}' },
              },
            ],
          },
        ],
      },
      h.t.clock.now(),
    );
    const config = h.t.deps.config;
    await h.stopApp();
    await h.t.deps.close();
    cleanups.push(() => h.t.close());
    const env = {
      DATA_DIR: h.t.dir,
      SESSION_SECRET: config.sessionSecret,
      TOKEN_ENCRYPTION_KEY: config.tokenEncryptionKey.toString('hex'),
      B24_PORTAL_HOSTS: '127.0.0.1:*',
      B24_OAUTH_SERVERS: h.emu.oauthUrl,
      B24_CLIENT_ID: config.b24.clientId ?? '',
      B24_CLIENT_SECRET: config.b24.clientSecret ?? '',
      WORKER_CONCURRENCY: '4',
      LOG_LEVEL: 'warn',
      ...h.t.dbEnv,
    };
    const server = await spawnServer(env);
    const who = {
      memberId: portal.memberId,
      domain: portal.domain,
      applicationToken: portal.applicationToken,
    };
    for (const [i, id] of deals.entries()) {
      const res = await fetch(`${server.url}/b24/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: eventBody({ portal: who, id, ts: 1764237600 + i }),
      });
      expect(res.status).toBe(200);
    }
    while (sink.requests.length < 30) await new Promise((r) => setTimeout(r, 5));
    server.proc.kill('SIGKILL');
    await new Promise((r) => server.proc.once('exit', r));
    const before = sink.requests.length;

    const db = openDb(config.database);
    cleanups.push(() => db.destroy());
    const succeeded = new Set(
      (
        (await db('action_runs').where({ status: 'succeeded' }).select('idempotency_key')) as {
          idempotency_key: string;
        }[]
      ).map((r) => r.idempotency_key),
    );
    const unfinishedAtKill = Number(
      (await db('events').whereIn('status', ['received', 'processing']).count({ n: '*' }).first())
        ?.n,
    );

    const restarted = await spawnServer(env);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const left = Number(
        (
          await db('events')
            .where('event', 'ONCRMDEALUPDATE')
            .whereNotIn('status', ['processed', 'failed', 'skipped'])
            .count({ n: '*' })
            .first()
        )?.n,
      );
      if (left === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await restarted.stop();

    const statuses = (await db('events').where('event', 'ONCRMDEALUPDATE').select('status')) as {
      status: string;
    }[];
    const after = sink.requests.slice(before);
    const repeatedSucceeded = after.filter((q) =>
      succeeded.has(String(q.headers['idempotency-key'])),
    );
    const keys = sink.requests.map((q) => String(q.headers['idempotency-key']));
    const resent = keys.length - new Set(keys).size;
    process.stdout.write(
      `processing crash: ${statuses.length} events, ${unfinishedAtKill} unfinished at kill, ${succeeded.size} steps succeeded before it, ` +
        `${after.length} requests after restart, ${resent} in-flight steps sent again, ${repeatedSucceeded.length} succeeded steps repeated\n`,
    );
    expect(statuses).toHaveLength(60);
    expect(statuses.every((s) => s.status === 'processed')).toBe(true);
    expect(unfinishedAtKill).toBeGreaterThan(0);
    expect(repeatedSucceeded).toEqual([]);
    expect(new Set(keys).size).toBe(120);
    expect(resent).toBeLessThanOrEqual(4);
  }, 90_000);
});
