import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { armRestFaults, disarmRestFaults } from '../emulator/rest-faults.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';

/** The app's REST timeout here (30 s in production): how long the hanging portal holds its lane. */
const TIMEOUT_MS = 3_000;
const MIN = 60_000;

/**
 * The net's timer (server/recovery/offline.ts `start`): a tick whose last drain hangs on one
 * portal does not keep the next tick, and the portals it finds due, waiting.
 */
describe("the offline net's timer while one portal hangs", () => {
  let h!: InstallHarness;
  let hanging!: EmulatedPortal;
  let other!: EmulatedPortal;

  beforeAll(async () => {
    h = await startInstallHarness(
      { B24_OFFLINE_EVENTS: 'on' },
      {},
      { bitrix: { timeoutMs: TIMEOUT_MS } },
    );
    h.t.clock.set(Date.now());
    hanging = (await installPortal(h)).portal;
    other = (await installPortal(h)).portal;
  }, 60_000);
  afterAll(async () => {
    disarmRestFaults(hanging.memberId);
    await h?.close();
  });

  const reads = (p: EmulatedPortal) => p.calls.filter((c) => c.method === 'event.offline.get');
  /** Waits (real time, the timer's) until `done`, at most `ms`; whether it came. */
  async function until(done: () => boolean, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    return done();
  }

  it('drains a portal that falls due while the previous tick still waits for the hanging one', async () => {
    const now = h.t.clock.now().getTime();
    const db = h.t.deps.db;
    await db('portals').where({ member_id: hanging.memberId }).update({ offline_due_at: 0 });
    await db('portals')
      .where({ member_id: other.memberId })
      .update({ offline_due_at: now + MIN, offline_interval_ms: null });
    const faults = armRestFaults(hanging.memberId, { timeout: 1 });
    const before = reads(other).length;
    h.services.offline.start(50);
    try {
      // The first tick took the hanging portal; the other is not due yet.
      expect(await until(() => faults.requests > 0, 2_000)).toBe(true);
      const hungAt = Date.now();
      h.t.clock.advance(2 * MIN);
      // Due now: a later tick drains it while the hanging portal still holds its lane.
      expect(await until(() => reads(other).length > before, TIMEOUT_MS / 2)).toBe(true);
      expect(Date.now() - hungAt).toBeLessThan(TIMEOUT_MS);
    } finally {
      disarmRestFaults(hanging.memberId);
      await h.services.offline.stop();
    }
  }, 60_000);
});
