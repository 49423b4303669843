import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { armRestFaults, disarmRestFaults } from '../emulator/rest-faults.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';
import { createOfflineDrain } from '../../server/recovery/offline.js';

/**
 * The offline net at scale (server/README.md#loss-recovery): many portals on one emulator,
 * drained 8 at a time, each on its own interval kept in `portals`.
 */
const PORTALS = 40;
const LANES = 8;
/** Every REST request's round trip in the timing tests. */
const LATENCY_MS = 100;
/**
 * The app's REST timeout here (30 s in production): the hanging portal's lane is held this
 * long. Over three times the others' 1.8 s on 7 lanes: a loaded CI machine took 3.7 s.
 */
const TIMEOUT_MS = 6_000;
/** REST calls of one drain of an empty queue in the confirm mode, mode known or not. */
const CALLS_FIRST_DRAIN = 3; // feature.get, event.offline.get, event.offline.get error=1
const MIN = 60_000;

describe('the offline net over many portals', () => {
  let h!: InstallHarness;
  const portals: EmulatedPortal[] = [];
  const db = () => h.t.deps.db;
  const offline = () => h.services.offline;

  beforeAll(async () => {
    h = await startInstallHarness(
      { B24_OFFLINE_EVENTS: 'on' },
      {},
      { bitrix: { timeoutMs: TIMEOUT_MS } },
    );
    h.t.clock.set(Date.now());
    for (let i = 0; i < PORTALS; i++) portals.push((await installPortal(h)).portal);
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });
  beforeEach(async () => {
    for (const p of portals) p.setLatency(0);
    // Every portal due at once, as after an upgrade (the migration's default).
    await db()('portals').update({
      offline_due_at: 0,
      offline_interval_ms: null,
      offline_lease_until: null,
    });
  });

  /** Each portal's REST calls of `method` from `from` (per portal, by index) on. */
  const callsSince = (from: number[], method?: string) =>
    portals.map((p, i) => p.calls.slice(from[i]).filter((c) => !method || c.method === method));
  const mark = () => portals.map((p) => p.calls.length);
  /** A portal's schedule row. */
  const schedule = async (p: EmulatedPortal) =>
    (await db()('portals').where({ member_id: p.memberId }).first()) as {
      offline_due_at: number | string;
      offline_interval_ms: number | null;
    };
  /** Reads of a portal's new records (not the error records' re-read). */
  const reads = (from: number[]) =>
    callsSince(from, 'event.offline.get').map((cs) => cs.filter((c) => !c.params.error).length);

  it('drains 40 due portals 8 at a time, and a portal that hangs holds one lane only', async () => {
    for (const p of portals) p.setLatency(LATENCY_MS);
    const hanging = portals[0]!;
    // Never answered: held until the app's REST timeout.
    const faults = armRestFaults(hanging.memberId, { timeout: 1 });
    const from = mark();
    const t0 = Date.now();
    let tookMs: number;
    try {
      const report = await offline().tick();
      tookMs = Date.now() - t0;
      expect(report).toEqual({ read: 0, recovered: 0, covered: 0, failed: 0 });
    } finally {
      disarmRestFaults(hanging.memberId);
    }
    expect(faults.timeout).toBe(1);
    const calls = callsSince(from);
    // Each other portal was drained once, its queue read in the confirm mode.
    for (const cs of calls.slice(1)) {
      expect(cs.map((c) => c.method)).toEqual([
        'feature.get',
        'event.offline.get',
        'event.offline.get',
      ]);
    }
    // When each portal's last request arrived, from the tick's start.
    const lastAt = calls.slice(1).map((cs) => cs.at(-1)!.at - t0);
    const drainMs = CALLS_FIRST_DRAIN * LATENCY_MS;
    const serialMs = (PORTALS - 1) * drainMs + TIMEOUT_MS;
    // 39 portals on the 7 lanes the hanging portal leaves: 6 drains in a row each.
    const lanesMs = Math.ceil((PORTALS - 1) / (LANES - 1)) * drainMs;
    process.stdout.write(
      `offline net tick, ${PORTALS} portals (one hanging ${TIMEOUT_MS} ms), ` +
        `${LATENCY_MS} ms a call: ${tookMs} ms (serial: ${serialMs} ms); ` +
        `the others done after ${Math.max(...lastAt)} ms (lanes: ${lanesMs} ms)\n`,
    );
    // The others did not wait for the hanging portal: all were asked before its timeout.
    expect(Math.max(...lastAt)).toBeLessThan(TIMEOUT_MS);
    // 8 at a time, the hanging portal holding one lane throughout: the others 7 at once at
    // most, and 7 at once from the start (counted by when their requests arrived, which a
    // loaded machine delays but does not reorder).
    const spans = calls.slice(1).map((cs) => [cs[0]!.at, cs.at(-1)!.at] as const);
    const inFlight = (t: number) => spans.filter(([a, b]) => a <= t && t <= b).length;
    expect(Math.max(...spans.map(([a]) => inFlight(a)))).toBe(LANES - 1);
    // The tick lasted about the hanging lane, not the sum of the portals.
    expect(tookMs).toBeLessThan(TIMEOUT_MS + lanesMs);
    expect(tookMs).toBeLessThan(serialMs / 2);
    // Found nothing: asked again in 10 minutes; the one that failed in 5.
    const now = h.t.clock.now().getTime();
    expect(await schedule(hanging)).toMatchObject({ offline_interval_ms: 5 * MIN });
    expect(Number((await schedule(hanging)).offline_due_at)).toBe(now + 5 * MIN);
    for (const p of portals.slice(1)) {
      expect(await schedule(p)).toMatchObject({ offline_interval_ms: 10 * MIN });
    }
  }, 60_000);

  it('drains every portal 8 at a time after downtime, due or not', async () => {
    await offline().tick(); // all now due in 10 minutes
    for (const p of portals) p.setLatency(LATENCY_MS);
    const from = mark();
    const t0 = Date.now();
    await offline().drainAll();
    const tookMs = Date.now() - t0;
    expect(reads(from)).toEqual(portals.map(() => 1));
    // The mode is known from the tick: two reads per portal.
    const serialMs = PORTALS * 2 * LATENCY_MS;
    process.stdout.write(
      `offline drain after downtime, ${PORTALS} portals, ${LATENCY_MS} ms a call: ` +
        `${tookMs} ms (serial: ${serialMs} ms)\n`,
    );
    // 8 at a time, counted by when each portal's requests arrived (a loaded machine delays
    // them but does not reorder them): the wall time alone measured the machine as much.
    const spans = callsSince(from).map((cs) => [cs[0]!.at, cs.at(-1)!.at] as const);
    const inFlight = (t: number) => spans.filter(([a, b]) => a <= t && t <= b).length;
    expect(Math.max(...spans.map(([a]) => inFlight(a)))).toBe(LANES);
    expect(tookMs).toBeLessThan(serialMs / 2);
  }, 60_000);

  it('asks idle portals less and less often, and every 5 minutes again after a notice or records', async () => {
    const clock = h.t.clock;
    const start = clock.now().getTime();
    const from = mark();
    /** Ticks once a minute (simulated) for `minutes`; the worker takes what was stored. */
    const run = async (minutes: number) => {
      for (let m = 0; m < minutes; m++) {
        await offline().tick();
        clock.advance(MIN);
      }
    };
    await run(180);
    // Drains at 0, 10, 30, 70 and 130 minutes: the interval doubles up to an hour.
    expect(reads(from)).toEqual(portals.map(() => 5));
    // Every 5 minutes would have been 36 each.
    process.stdout.write(
      `offline net over 3 idle hours: ${reads(from)[1]} reads per portal (every 5 minutes: 36)\n`,
    );
    const noticed = portals[1]!;
    expect(await schedule(noticed)).toMatchObject({ offline_interval_ms: 60 * MIN });

    // A change with its notice: drained at once, then the net comes back every 5 minutes.
    const before = mark();
    await noticed.addDeal({ TITLE: 'noticed', STAGE_ID: 'NEW' });
    await noticed.whenIdle();
    await h.services.intake.drain();
    await h.services.worker.drain();
    const notice = await db()('events')
      .where({ event: 'ONOFFLINEEVENT' })
      .orderBy('id', 'desc')
      .first();
    expect(notice).toMatchObject({ status: 'processed' });
    expect(reads(before)[1]).toBe(1);
    expect(await schedule(noticed)).toMatchObject({ offline_interval_ms: 5 * MIN });
    const afterNotice = mark();
    await run(6);
    expect(reads(afterNotice)[1]).toBe(1);
    expect(await schedule(noticed)).toMatchObject({ offline_interval_ms: 10 * MIN });
    // The idle portals were not asked meanwhile (next due at 190 minutes).
    expect(reads(afterNotice)[2]).toBe(0);
    expect(clock.now().getTime() - start).toBeLessThan(190 * MIN);
  }, 120_000);

  it("asks an idle portal's plan once a day, not at each hourly drain", async () => {
    const clock = h.t.clock;
    const drain = createOfflineDrain(h.t.deps);
    const from = mark();
    try {
      for (let m = 0; m < 180; m++) {
        await drain.tick();
        clock.advance(MIN);
      }
    } finally {
      await drain.stop();
    }
    expect(reads(from)).toEqual(portals.map(() => 5));
    // feature.get once, at the first drain; a downgrade shows at once (clear=0 refused).
    expect(callsSince(from, 'feature.get').map((c) => c.length)).toEqual(portals.map(() => 1));
  }, 120_000);

  it('recovers a record whose notice was lost within the hour of an idle portal', async () => {
    const clock = h.t.clock;
    const run = async (minutes: number) => {
      for (let m = 0; m < minutes; m++) {
        await offline().tick();
        clock.advance(MIN);
      }
    };
    // Idle until the interval is an hour: drains at 0, 10, 30, 70 minutes.
    await run(71);
    const idle = portals[3]!;
    expect(await schedule(idle)).toMatchObject({ offline_interval_ms: 60 * MIN });
    // A minute after its last drain, the app is away while a deal is added: the delivery and
    // the notice are lost, the offline record waits.
    await h.pauseApp();
    const deal = await idle.addDeal({ TITLE: 'lost', STAGE_ID: 'NEW' });
    await idle.whenIdle();
    h.resumeApp();
    const changedAt = clock.now().getTime();
    expect(idle.offlineEvents).toHaveLength(1);
    const stored = () =>
      db()('events').where({ source: 'offline', entity_id: deal.id }).select('status');
    let waitedMs = 0;
    while ((await stored()).length === 0) {
      expect(waitedMs).toBeLessThanOrEqual(60 * MIN);
      await offline().tick();
      if ((await stored()).length > 0) break;
      clock.advance(MIN);
      waitedMs += MIN;
    }
    // Drained at its hour: 59 minutes after the change made a minute after the last drain.
    expect(waitedMs).toBe(59 * MIN);
    expect(clock.now().getTime() - changedAt).toBeLessThanOrEqual(60 * MIN);
    expect(idle.offlineEvents).toHaveLength(0);
    // Records found: every 5 minutes again.
    expect(await schedule(idle)).toMatchObject({ offline_interval_ms: 5 * MIN });
  }, 120_000);

  it('drains each due portal once when two instances tick together', async () => {
    for (const p of portals) p.setLatency(20);
    const a = createOfflineDrain(h.t.deps);
    const b = createOfflineDrain(h.t.deps);
    try {
      const from = mark();
      await Promise.all([a.tick(), b.tick()]);
      expect(reads(from)).toEqual(portals.map(() => 1));
      // And neither drains them again before they are due.
      const again = mark();
      await Promise.all([a.tick(), b.tick()]);
      expect(reads(again)).toEqual(portals.map(() => 0));
    } finally {
      await a.stop();
      await b.stop();
    }
  }, 60_000);
});
