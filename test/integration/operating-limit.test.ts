import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId, type PortalRow } from '../../db/stores/portals.js';
import { createDeps, type Deps } from '../../server/deps.js';
import { PausedError } from '../../server/lib/retry-errors.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { createCollectingLogger } from '../helpers/collecting-logger.js';
import { startInstallHarness, type InstallHarness } from '../helpers/install-harness.js';

// The operating limit (https://apidocs.bitrix24.com/limits.html): each method has 480 s of
// operating time per 10 minutes; past it the portal answers 429 OPERATION_TIME_LIMIT until
// operating_reset_at.
describe('the per-method operating limit', () => {
  let h: InstallHarness;
  let portal: EmulatedPortal;
  let offset = 0;
  const row = async () => (await findPortalByMemberId(h.t.deps.db, portal.memberId)) as PortalRow;
  const limited = () => portal.calls.filter((c) => c.error === 'OPERATION_TIME_LIMIT');
  const dealGets = () => portal.calls.filter((c) => c.method === 'crm.deal.get');

  beforeEach(async () => {
    offset = 0;
    // The app's wall clock and the portal's move together (operating_reset_at is portal time).
    const now = () => Date.now() + offset;
    h = await startInstallHarness({}, { now }, { bitrix: { now } });
    portal = await h.addPortal();
    expect((await portal.install()).status).toBe(200);
    await portal.addDeal({ TITLE: 'heavy' });
  });
  afterEach(async () => {
    await h.close();
  });

  it('slows a heavy method before the portal blocks it, then goes on after operating_reset_at', async () => {
    portal.setOperatingCost('crm.deal.get', 200);
    const get = async () => h.t.deps.bitrix.call(await row(), 'crm.deal.get', { id: 1 });
    await get(); // 200 s of 480
    await get(); // 400 s: one more such call would pass the limit
    const err = await get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PausedError);
    expect(String((err as Error).message)).toContain('crm.deal.get');
    // It waits for the portal's operating_reset_at: 10 minutes after the first call.
    expect((err as PausedError).resumeAfterMs).toBeGreaterThan(590_000);
    expect((err as PausedError).resumeAfterMs).toBeLessThanOrEqual(601_000);
    // Control: two calls reached the portal, the third was held back, nothing was blocked.
    expect(dealGets()).toHaveLength(2);
    expect(limited()).toHaveLength(0);
    // Other methods are not held.
    await expect(h.t.deps.bitrix.call(await row(), 'crm.deal.list', {})).resolves.toBeDefined();

    offset += 601_000;
    await expect(get()).resolves.toMatchObject({ ID: '1' });
    expect(dealGets()).toHaveLength(3);
  });

  /** A second process of the app (same credentials), spending the method's budget. */
  async function otherProcessCalls(method: string) {
    const other: Deps = await createDeps(h.t.deps.config, {
      clock: h.t.clock,
      logger: createCollectingLogger().logger,
    });
    try {
      const otherRow = (await findPortalByMemberId(other.db, portal.memberId)) as PortalRow;
      await other.bitrix.call(otherRow, method, { id: 1 });
    } finally {
      await other.close();
    }
  }

  it("waits for the last answer's operating_reset_at after a 429, not for the generic backoff", async () => {
    portal.setOperatingCost('crm.deal.get', 100);
    // This process's answer says when the oldest minute of the budget comes back; 100 s of
    // 480 is far from what the app holds back for.
    await h.t.deps.bitrix.call(await row(), 'crm.deal.get', { id: 1 });
    offset += 30_000;
    portal.setOperatingCost('crm.deal.get', 400);
    await otherProcessCalls('crm.deal.get');
    offset += 30_000;
    const err = await h.t.deps.bitrix
      .call(await row(), 'crm.deal.get', { id: 1 })
      .catch((e: unknown) => e);
    expect(limited()).toHaveLength(1);
    expect(err).toBeInstanceOf(PausedError);
    expect(String((err as Error).message)).toContain('OPERATION_TIME_LIMIT');
    // The 429 carries no figures (DOCS:settings/performance/limits.md): the last successful
    // answer's operating_reset_at is 10 minutes after this process's call, 9 minutes from now.
    expect((err as PausedError).resumeAfterMs).toBeGreaterThan(535_000);
    expect((err as PausedError).resumeAfterMs).toBeLessThanOrEqual(541_000);
    // Until then the method is not called again.
    await expect(
      h.t.deps.bitrix.call(await row(), 'crm.deal.get', { id: 1 }),
    ).rejects.toBeInstanceOf(PausedError);
    expect(limited()).toHaveLength(1);
  });

  it('waits one minute basket after a 429 when no answer of the method said more', async () => {
    portal.setOperatingCost('crm.deal.get', 500);
    await otherProcessCalls('crm.deal.get');
    const err = await h.t.deps.bitrix
      .call(await row(), 'crm.deal.get', { id: 1 })
      .catch((e: unknown) => e);
    expect(limited()).toHaveLength(1);
    expect((err as PausedError).resumeAfterMs).toBe(60_000);
  });
});
