import http from 'node:http';
import { afterAll, describe, expect, it } from '@jest/globals';
import { openDb } from '../../db/connect.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { postForm } from '../helpers/form-post.js';
import { eventBody } from '../helpers/event-builder.js';
import { startHttpSink, type SunkRequest } from '../helpers/http-sink.js';
import { spawnedAppEnv, startInstallHarness } from '../helpers/install-harness.js';
import { onPg } from '../helpers/pg.js';
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * Several instances, end to end: three real server processes on one PostgreSQL database and one
 * emulated portal (Bitrix24's own limit: 2 req/s, burst 50), a flood of deliveries spread
 * over them, the portal's access token expiring mid-flood, and one instance SIGKILLed while
 * it works. Every acknowledged delivery must end processed, no step recorded as succeeded
 * may be sent again, the portal must never answer QUERY_LIMIT_EXCEEDED, and the expired
 * token must be refreshed once. PostgreSQL pass only.
 */
(onPg() ? describe : describe.skip)('three instances on one PostgreSQL', () => {
  const cleanups: Array<() => Promise<unknown> | void> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('processes every acknowledged delivery once across a SIGKILL, within the portal’s budget', async () => {
    const DEALS = 40;
    const DELIVERIES = 900;
    // The receiver answers a little late, so steps are in flight when the kill comes.
    const sink = await startHttpSink(() => ({ status: 200, body: { ok: true }, delayMs: 10 }));
    cleanups.push(() => sink.close());
    const h = await startInstallHarness();
    cleanups.push(() => h.emu.close());
    const portal = await h.addPortal();
    expect((await portal.install()).status).toBe(200);
    const deals: string[] = [];
    for (let i = 0; i < DEALS; i++)
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
            actions: ['a', 'b'].map((name) => ({
              type: 'http' as const,
              name,
              method: 'POST' as const,
              url: `${sink.url}/${name}`,
              body: { id: '{{deal.ID}}' },
            })),
          },
        ],
      },
      h.t.clock.now(),
    );
    // From here on the portal counts requests as Bitrix24 does, refusing past its burst.
    portal.setRateLimit({ enabled: true, drainPerSec: 2, burst: 50 });
    const config = h.t.deps.config;
    await h.stopApp();
    // Stored by the harness on its manual clock (long ago): the real instances would take
    // the token for expired and refresh at once. An hour from now, as a real install stores.
    await h.t.deps.db('portals').update({ token_expires_at: Date.now() + 3600_000 });
    await h.t.deps.close();
    cleanups.push(() => h.t.close());

    const env = (i: number) => ({
      ...spawnedAppEnv(h, tempDirFor(i)),
      WORKER_CONCURRENCY: '4',
      RETRY_BASE_SECONDS: '1',
      LOG_LEVEL: 'warn',
      ...h.t.dbEnv,
    });
    const dirs = [tempDir(), tempDir(), tempDir()];
    cleanups.push(() => dirs.forEach((d) => d.cleanup()));
    const tempDirFor = (i: number) => dirs[i]!.dir;
    const servers: SpawnedServer[] = await Promise.all([0, 1, 2].map((i) => spawnServer(env(i))));
    cleanups.push(() => Promise.all(servers.map((s) => s.stop('SIGKILL'))));
    const victim = servers[1]!;
    const victimGone = new Promise((r) => victim.proc.once('exit', r));

    const who = {
      memberId: portal.memberId,
      domain: portal.domain,
      applicationToken: portal.applicationToken,
    };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    cleanups.push(() => agent.destroy());
    const acked: number[] = [];
    const post = (server: SpawnedServer, n: number) => {
      const body = eventBody({ portal: who, id: deals[n % DEALS]!, ts: 1764237600 + n });
      return postForm(new URL('/b24/events', server.url), body, agent).then(
        (status) => {
          if (status === 200) acked.push(n);
        },
        () => undefined, // the killed instance: not acknowledged
      );
    };

    const refreshes = () => h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token');
    const refreshesBefore = refreshes().length;
    let killed = false;
    let sinkAtKill = 0;
    let succeededAtKill = new Set<string>();
    const db = openDb(config.database);
    cleanups.push(() => db.destroy());
    const succeededKeys = async () =>
      new Set(
        (
          (await db('action_runs')
            .where({ status: 'succeeded' })
            .pluck('idempotency_key')) as string[]
        ).map(String),
      );

    // The flood: 8 senders, round-robin over the instances.
    let next = 0;
    const senders = Array.from({ length: 8 }, async () => {
      for (let n = next++; n < DELIVERIES; n = next++) {
        if (n === Math.floor(DELIVERIES / 4)) portal.expireAccessTokens();
        if (n === Math.floor(DELIVERIES / 2) && !killed) {
          // Kill one instance while it works: wait until steps have succeeded (each event
          // waits its settling second first) and others are running.
          const running = async () =>
            Number((await db('jobs').where({ status: 'running' }).count({ c: '*' }).first())?.c);
          while ((succeededAtKill = await succeededKeys()).size === 0 || (await running()) === 0)
            await new Promise((r) => setTimeout(r, 2));
          sinkAtKill = sink.requests.length;
          killed = true;
          victim.proc.kill('SIGKILL');
        }
        await post(servers[n % 3]!, n);
      }
    });
    await Promise.all(senders);
    await victimGone;

    // Every acknowledged delivery ends processed, the dead instance's share included.
    const deadline = Date.now() + 90_000;
    let left = -1;
    while (Date.now() < deadline) {
      left = Number(
        (
          await db('events')
            .where('event', 'ONCRMDEALUPDATE')
            .whereNotIn('status', ['processed', 'failed', 'skipped'])
            .count({ n: '*' })
            .first()
        )?.n,
      );
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const events = (await db('events')
      .where('event', 'ONCRMDEALUPDATE')
      .select('ts', 'status')) as Array<{ ts: number; status: string }>;
    const byDelivery = new Map(events.map((e) => [Number(e.ts) - 1764237600, e.status]));
    const notProcessed = acked.filter((n) => byDelivery.get(n) !== 'processed');

    // Steps: each (event, step) is sent under its Idempotency-Key. After the kill none that
    // was recorded succeeded is sent again; a step that was in flight on the dead instance
    // may be (same key, which is what receivers dedupe on), nothing else.
    const keyOf = (q: SunkRequest) => String(q.headers['idempotency-key']);
    const keys = sink.requests.map(keyOf);
    const repeats = keys.length - new Set(keys).size;
    const resentSucceeded = sink.requests
      .slice(sinkAtKill)
      .filter((q) => succeededAtKill.has(keyOf(q)));
    const processed = events.filter((e) => e.status === 'processed').length;
    if (left !== 0) {
      const stuck = await db('events')
        .where('event', 'ONCRMDEALUPDATE')
        .whereNotIn('status', ['processed', 'failed', 'skipped']);
      const jobs = await db('jobs').whereIn(
        'event_id',
        stuck.map((e: { id: number }) => e.id),
      );
      process.stdout.write(`unfinished: ${JSON.stringify({ stuck, jobs })}\n`);
    }
    const stats = {
      deliveries: DELIVERIES,
      acknowledged: acked.length,
      processed,
      notProcessed: notProcessed.length,
      stepsSent: keys.length,
      distinctSteps: new Set(keys).size,
      repeatedInFlight: repeats,
      succeededResent: resentSucceeded.length,
      // Requests on the wire (a batch's commands are recorded too, but are not requests).
      restRequests: portal.calls.filter((c) => !c.inBatch).length,
      limitErrors: portal.rateLimitHits,
      refreshes: refreshes().length - refreshesBefore,
    };
    process.stdout.write(`scale-out: ${JSON.stringify(stats)}\n`);

    expect(killed).toBe(true);
    expect(succeededAtKill.size).toBeGreaterThan(0);
    expect(left).toBe(0);
    expect(acked.length).toBeGreaterThan(DELIVERIES * 0.6);
    expect(notProcessed).toEqual([]);
    expect(new Set(keys).size).toBe(2 * processed);
    expect(resentSucceeded).toEqual([]);
    // At most what the dead instance had in flight: WORKER_CONCURRENCY jobs, 2 steps each.
    expect(repeats).toBeLessThanOrEqual(8);
    expect(portal.rateLimitHits).toBe(0);
    // The expired token was refreshed once for all three, and no refresh token was spent
    // twice (a second use is refused: invalid_grant, and the portal needs re-authorisation).
    expect(stats.refreshes).toBe(1);
    const spent = refreshes().map((c) => c.refreshToken);
    expect(new Set(spent).size).toBe(spent.length);
    expect(refreshes().every((c) => c.status === 200)).toBe(true);
    expect((await db('portals').first('status'))?.status).toBe('installed');
  }, 150_000);
});
