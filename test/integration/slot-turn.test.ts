import { afterEach, describe, expect, it } from '@jest/globals';
import type { EventMap } from '../../server/rules/model.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';
import { waitFor } from '../reliability/lib/deliveries.js';

const rule = (url: string, steps: number): EventMap => ({
  rules: [
    {
      name: 'post the deal',
      on: ['ONCRMDEALADD'],
      actions: Array.from({ length: steps }, () => ({
        type: 'http' as const,
        method: 'POST' as const,
        url,
        body: { title: '{{deal.TITLE}}' },
        timeoutMs: 1000,
      })),
    },
  ],
});

/**
 * A job of many steps gives its worker slot to another portal between two steps
 * (server/queue/slot-turn.ts), with the emulated portals and the real worker (one slot).
 */
describe('a job that gives its worker slot back', () => {
  let h: InstallHarness;
  let slow: HttpSink;
  let fast: HttpSink;
  afterEach(async () => {
    await Promise.all([slow.close(), fast.close()]);
    await h.close();
  });

  it('goes on with the record it read, without reading it again from the portal', async () => {
    slow = await startHttpSink(() => ({ delayMs: 300 }));
    fast = await startHttpSink();
    h = await startInstallHarness({ WORKER_CONCURRENCY: '1', ACTION_PRIVATE_HOSTS: '127.0.0.1' });
    const { portal: a } = await installPortal(h);
    const { portal: b } = await installPortal(h);
    const { db } = h.t.deps;
    const at = h.t.clock.now();
    await saveRuleMap(db, a.memberId, rule(`${slow.url}/a`, 6), at);
    await saveRuleMap(db, b.memberId, rule(`${fast.url}/b`, 1), at);
    // Each read of a deal, alone or as a command of a `batch`.
    const reads = () => a.calls.filter((c) => c.method === 'crm.deal.get').length;
    const before = reads();

    await a.addDeal({ TITLE: 'First title' });
    await a.whenIdle();
    await h.services.intake.drain();
    const outcomes: string[] = [];
    h.services.worker.on('job', (o: { outcome: string }) => outcomes.push(o.outcome));
    h.services.worker.start();
    expect(await waitFor(() => slow.requests.length > 0, 5000, 10)).toBe(true);
    // The deal changes meanwhile (no event reaches the app for it) and portal B's deal arrives.
    (a.deals.get('1') as Record<string, unknown> | undefined)!.TITLE = 'Changed title';
    await b.addDeal({ TITLE: 'Other portal' });
    await b.whenIdle();
    await h.services.intake.drain();

    const done = async () =>
      ((await db('events').where({ event: 'ONCRMDEALADD' }).pluck('status')) as string[]).filter(
        (s) => s === 'processed',
      ).length === 2;
    expect(await waitFor(done, 10_000, 20)).toBe(true);
    expect(outcomes).toContain('yielded');
    // B's event ran while A's was between two of its steps.
    expect(fast.requests).toHaveLength(1);
    expect(slow.requests.length).toBe(6);
    // One read of A's deal, before its first step; the steps after the pause saw that read.
    expect(reads() - before).toBe(1);
    expect(slow.requests.map((r) => JSON.parse(r.body) as unknown)).toEqual(
      Array(6).fill({ title: 'First title' }),
    );
  }, 30_000);
});
