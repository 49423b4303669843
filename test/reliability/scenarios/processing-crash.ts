import { dealUpdate, fmt, postDelivery, sleep, waitFor } from '../lib/deliveries.js';
import { prepareInstalledApp } from '../lib/installed-app.js';
import { wonToTarget } from '../lib/rules.js';
import { startTarget } from '../lib/target.js';
import type { ReliabilityContext, Row, Scenario } from '../types.js';

const TERMINAL = ['processed', 'failed', 'skipped'];
const CONCURRENCY = 4;

/**
 * SIGKILL during processing, then restart: every event must end terminal, and no step
 * recorded as succeeded may be sent again. A step in flight at the kill may be sent again,
 * under the same Idempotency-Key (what receivers dedupe on); at most one per worker slot.
 * Each won deal's event runs two HTTP steps against a target that answers in 15 ms.
 */
export const scenario: Scenario = async (ctx: ReliabilityContext): Promise<Row[]> => {
  const full = ctx.scale === 'full';
  const dealCount = full ? 400 : 60;
  const kills = full ? 3 : 1;
  const target = await startTarget({ delayMs: 15 });
  const map = wonToTarget(target.url, [
    {
      type: 'http',
      name: 'shipment',
      method: 'POST',
      url: `${target.url}/shipments`,
      body: { dealId: '{{deal.ID}}' },
    },
  ]);
  const app = await prepareInstalledApp(ctx, map, {
    WORKER_CONCURRENCY: String(CONCURRENCY),
  });
  try {
    const deals: string[] = [];
    for (let i = 0; i < dealCount; i++)
      deals.push((await app.portal.addDeal({ TITLE: `Crash ${i}`, STAGE_ID: 'WON' })).id);
    const db = app.openDb();
    const count = async (q: (b: ReturnType<typeof db>) => ReturnType<typeof db>) =>
      Number(((await q(db('events')).count({ n: '*' }).first()) as { n: number }).n);
    const unfinished = () =>
      count((b) => b.where('event', 'ONCRMDEALUPDATE').whereNotIn('status', TERMINAL));

    let server = await app.spawn({ LOG_LEVEL: 'warn' });
    for (const [i, id] of deals.entries()) {
      const res = await postDelivery(
        new URL('/b24/events', server.url),
        dealUpdate(app.who, id, i),
      );
      if (res.status !== 200) throw new Error(`delivery answered ${res.status}`);
    }

    const unfinishedAtKills: number[] = [];
    const atKills: Array<{ killedAt: number; succeeded: string[] }> = [];
    for (let k = 0; k < kills; k++) {
      // Kill once a share of the steps went out, while others are in flight.
      const goal = Math.round(((k + 1) * 2 * dealCount) / (kills + 1));
      await waitFor(() => target.received >= goal, 60_000, 2);
      server.proc.kill('SIGKILL');
      await new Promise((r) =>
        server.proc.exitCode !== null ? r(null) : server.proc.once('exit', r),
      );
      atKills.push({
        killedAt: Date.now(),
        succeeded: (await db('action_runs')
          .where({ status: 'succeeded' })
          .pluck('idempotency_key')) as string[],
      });
      unfinishedAtKills.push(await unfinished());
      server = await app.spawn({ LOG_LEVEL: 'warn' });
    }
    await waitFor(async () => (await unfinished()) === 0, full ? 180_000 : 60_000, 100);
    await sleep(200);
    // Steps recorded as succeeded at a kill, accepted again by the target after it.
    const repeated = new Set<string>();
    for (const { killedAt, succeeded } of atKills) {
      for (const key of succeeded) {
        if ((target.acceptedAt.get(key) ?? []).some((t) => t > killedAt)) repeated.add(key);
      }
    }
    await server.stop();

    const statuses = (await db('events')
      .where('event', 'ONCRMDEALUPDATE')
      .pluck('status')) as string[];
    const left = statuses.filter((s) => !TERMINAL.includes(s)).length;
    const processed = statuses.filter((s) => s === 'processed').length;
    const resent = target.duplicates();
    const atKill = unfinishedAtKills.map(fmt).join(', ');
    return [
      {
        area: 'Crash',
        check: `SIGKILL during processing (${fmt(dealCount)} events × 2 steps, ${kills} kill${kills > 1 ? 's' : ''}), then restart`,
        measured:
          `unfinished at the kill ${atKill} · left non-terminal after restart ${left}` +
          ` · processed ${fmt(processed)}/${fmt(statuses.length)}`,
        expected: 'non-terminal 0, all processed',
        pass:
          statuses.length === dealCount &&
          unfinishedAtKills.every((n) => n > 0) &&
          left === 0 &&
          processed === dealCount,
      },
      {
        area: 'Crash',
        check: 'SIGKILL during processing: steps sent',
        measured:
          `distinct steps ${fmt(target.accepted.size)}/${fmt(2 * dealCount)} · succeeded steps repeated ${repeated.size}` +
          ` · in-flight steps re-sent with their key ${resent}`,
        expected: `repeated 0, re-sent ≤ ${CONCURRENCY} per kill`,
        pass:
          target.accepted.size === 2 * dealCount &&
          repeated.size === 0 &&
          resent <= CONCURRENCY * kills,
      },
    ];
  } finally {
    await app.close();
    await target.close();
  }
};
