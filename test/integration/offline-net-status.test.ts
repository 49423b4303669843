import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';
import { createOfflineDrain } from '../../server/recovery/offline.js';

/**
 * A tick reads a page of due portals and drains them as lanes come free
 * (server/recovery/offline-net.ts): a portal that left `installed` meanwhile is not drained,
 * and its schedule stays as it was.
 */
describe('the offline net and a portal whose status changes during a tick', () => {
  let h!: InstallHarness;
  let slow!: EmulatedPortal;
  let leaving!: EmulatedPortal;

  beforeAll(async () => {
    h = await startInstallHarness({ B24_OFFLINE_EVENTS: 'on' });
    h.t.clock.set(Date.now());
    slow = (await installPortal(h)).portal;
    leaving = (await installPortal(h)).portal;
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('leaves a portal that needs re-authorisation by then to its return', async () => {
    const db = h.t.deps.db;
    await db('portals').update({ offline_due_at: 0, offline_interval_ms: null });
    slow.setLatency(300);
    const drain = createOfflineDrain(h.t.deps, { lanes: 1 });
    const calls = leaving.calls.length;
    try {
      const tick = drain.tick();
      // The page was read; the one lane drains the slow portal while this one loses its token.
      while (slow.calls.length === 0) await new Promise((r) => setTimeout(r, 10));
      await db('portals').where({ member_id: leaving.memberId }).update({ status: 'needs_reauth' });
      await tick;
    } finally {
      slow.setLatency(0);
      await drain.stop();
    }
    expect(leaving.calls.length).toBe(calls);
    const row = (await db('portals').where({ member_id: leaving.memberId }).first()) as {
      offline_due_at: number | string;
    };
    // Due as before: drained at the first tick after an admin re-authorises it.
    expect(Number(row.offline_due_at)).toBe(0);
  }, 60_000);
});
