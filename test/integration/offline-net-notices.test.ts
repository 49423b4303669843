import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';

const MIN = 60_000;

/**
 * A notice's drain reads only the new records; the records reported with
 * `event.offline.error` are read again by the net's drain alone (server/README.md#loss-recovery).
 */
describe('the offline net on a portal whose notices keep coming', () => {
  let h!: InstallHarness;
  let portal!: EmulatedPortal;

  beforeAll(async () => {
    // The emulator on the app's clock: its notices are throttled by minTimeout in that time.
    h = await startInstallHarness(
      { B24_OFFLINE_EVENTS: 'on' },
      { now: () => (h ? h.t.clock.now().getTime() : Date.now()) },
    );
    h.t.clock.set(Date.now());
    portal = (await installPortal(h)).portal;
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  /** Reads of the error records (the net drain's second pass) from call `from` on. */
  const errorReads = (from: number) =>
    portal.calls
      .slice(from)
      .filter((c) => c.method === 'event.offline.get' && Boolean(c.params.error)).length;

  it('still drains it through the net (error records included) when a notice comes every 4 minutes', async () => {
    const clock = h.t.clock;
    await h.services.offline.tick();
    const from = portal.calls.length;
    // 40 minutes: a change (and its notice) every 4 minutes, a tick every minute.
    for (let m = 0; m < 40; m++) {
      if (m % 4 === 0) {
        await portal.addDeal({ TITLE: `busy ${m}`, STAGE_ID: 'NEW' });
        await portal.whenIdle();
        await h.services.intake.drain();
        await h.services.worker.drain();
      }
      await h.services.offline.tick();
      clock.advance(MIN);
    }
    const notices = await h.t.deps
      .db('events')
      .where({ event: 'ONOFFLINEEVENT', status: 'processed' })
      .count({ n: '*' });
    // Control: the notices came and were drained.
    expect(Number(notices[0]?.n)).toBeGreaterThanOrEqual(10);
    // A notice makes the net's drain come within 5 minutes, never later than it was due:
    // about every 5 to 8 minutes here.
    expect(errorReads(from)).toBeGreaterThanOrEqual(5);
  }, 120_000);
});
