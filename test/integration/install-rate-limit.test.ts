import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId, type PortalRow } from '../../db/stores/portals.js';
import { createBitrixRest } from '../../server/bitrix/rest.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { startInstallHarness, type InstallHarness } from '../helpers/install-harness.js';

describe('REST rate limiting and read coalescing', () => {
  let h: InstallHarness;
  let portal: EmulatedPortal;
  let row: PortalRow;

  beforeEach(async () => {
    h = await startInstallHarness();
    portal = await h.addPortal();
    expect((await portal.install()).status).toBe(200);
    row = (await findPortalByMemberId(h.t.deps.db, portal.memberId)) as PortalRow;
  });
  afterEach(async () => {
    await h.close();
  });

  it('spreads a burst of 120 calls so the portal never answers QUERY_LIMIT_EXCEEDED', async () => {
    // Bitrix24's bucket shape (burst 50) with a faster drain, for test speed. Our side
    // drains a little slower than the portal: the emulator shares this process's CPU (and
    // the machine's with other test files), so arrivals bunch up; the slack absorbs that.
    portal.setRateLimit({ enabled: true, drainPerSec: 25, burst: 50 });
    const rest = createBitrixRest(h.t.deps, {
      limits: { drainPerSec: 20, burst: 50 },
      // The emulator shares this process's CPU, so arrivals bunch up by up to a few hundred ms
      // (more on a loaded CI machine: 10 left too little once, in a full run).
      headroom: 20,
    });
    const waits = await h.t.deps.metrics.rateLimitWaits.get();
    const before = waits.values[0]?.value ?? 0;
    const answers = await Promise.all(
      Array.from({ length: 120 }, () => rest.call<{ ID: string }>(row, 'profile')),
    );
    expect(answers).toHaveLength(120);
    expect(portal.rateLimitHits).toBe(0);
    expect(portal.calls.filter((c) => c.error === 'QUERY_LIMIT_EXCEEDED')).toHaveLength(0);
    const after = (await h.t.deps.metrics.rateLimitWaits.get()).values[0]?.value ?? 0;
    expect(after - before).toBeGreaterThanOrEqual(50);
  });

  it('the same burst without our limiter does hit the portal limit (the test has teeth)', async () => {
    // The portal drains 5 a second: 120 calls exceed its burst of 50 unless they take over
    // 14 s to arrive (at 100 a second, a loaded CI machine spread them over 0.7 s once and
    // none was refused).
    portal.setRateLimit({ enabled: true, drainPerSec: 5, burst: 50 });
    const rest = createBitrixRest(h.t.deps, { limits: { drainPerSec: 1e9, burst: 1e9 } });
    await Promise.allSettled(Array.from({ length: 120 }, () => rest.call(row, 'profile')));
    expect(portal.rateLimitHits).toBeGreaterThan(0);
    // An empty bucket for the tests below (configure empties it).
    portal.setRateLimit({ enabled: true, drainPerSec: 100, burst: 50 });
  });

  it('coalesces reads issued in one tick into batches of at most 50', async () => {
    const deal = await portal.addDeal({ TITLE: 'Coalesced' });
    const before = portal.calls.length;
    const reads = await Promise.all(
      Array.from({ length: 120 }, () =>
        h.t.deps.bitrix.read<{ TITLE: string }>(row, 'crm.deal.get', { id: deal.id }),
      ),
    );
    expect(reads.every((d) => d.TITLE === 'Coalesced')).toBe(true);
    const top = portal.calls.slice(before).filter((c) => !c.inBatch);
    expect(top.map((c) => c.method)).toEqual(['batch', 'batch', 'batch']);
  });

  it('fails only the read whose command failed inside a coalesced batch', async () => {
    const deal = await portal.addDeal({ TITLE: 'Exists' });
    const [ok, missing] = await Promise.allSettled([
      h.t.deps.bitrix.read<{ TITLE: string }>(row, 'crm.deal.get', { id: deal.id }),
      h.t.deps.bitrix.read(row, 'crm.deal.get', { id: 999999 }),
    ]);
    expect(ok).toMatchObject({ status: 'fulfilled', value: { TITLE: 'Exists' } });
    expect(missing).toMatchObject({ status: 'rejected', reason: { retryable: false } });
  });

  it('maps QUERY_LIMIT_EXCEEDED to a retryable error and ACCESS_DENIED to a permanent one', async () => {
    portal.failNext('crm.deal.get', { status: 503, error: 'QUERY_LIMIT_EXCEEDED' });
    await expect(h.t.deps.bitrix.call(row, 'crm.deal.get', { id: 1 })).rejects.toMatchObject({
      name: 'BitrixRetryableError',
      bitrixCode: 'QUERY_LIMIT_EXCEEDED',
      httpStatus: 503,
      retryable: true,
    });
    portal.failNext('crm.deal.get', { status: 403, error: 'ACCESS_DENIED' });
    await expect(h.t.deps.bitrix.call(row, 'crm.deal.get', { id: 1 })).rejects.toMatchObject({
      name: 'BitrixPermanentError',
      bitrixCode: 'ACCESS_DENIED',
      retryable: false,
    });
  });
});
