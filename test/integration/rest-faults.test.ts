import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId, type PortalRow } from '../../db/stores/portals.js';
import { BitrixRetryableError } from '../../server/bitrix/errors.js';
import { armRestFaults, disarmRestFaults } from '../emulator/rest-faults.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { startInstallHarness, type InstallHarness } from '../helpers/install-harness.js';

/**
 * The REST client against a failing portal (the emulator's fault switch): every way Bitrix24
 * fails is a retryable error for the worker, a request without an answer gives up in time,
 * and an expired_token storm costs at most one refresh per expiry.
 */
describe('REST client under portal faults', () => {
  let h: InstallHarness;
  let portal: EmulatedPortal;
  const row = async () => (await findPortalByMemberId(h.t.deps.db, portal.memberId)) as PortalRow;
  const refreshes = () => h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token').length;

  beforeEach(async () => {
    // Short enough for the "no answer" case (under its 5 s); long enough for the install and
    // the expiry storm's ten calls on a loaded CI machine (1 s timed one of them out there).
    h = await startInstallHarness({}, {}, { bitrix: { timeoutMs: 2500 } });
    portal = await h.addPortal();
    expect((await portal.install()).status).toBe(200);
  });
  afterEach(async () => {
    disarmRestFaults(portal.memberId);
    await h.close();
  });

  it.each([
    ['503 QUERY_LIMIT_EXCEEDED', { queryLimit: 1 }, 'QUERY_LIMIT_EXCEEDED'],
    ['500 INTERNAL_SERVER_ERROR', { serverError: 1 }, 'INTERNAL_SERVER_ERROR'],
    ['no answer', { timeout: 1 }, 'REQUEST_TIMEOUT'],
  ])('fails a call the portal answers with %s as retryable', async (_name, plan, code) => {
    armRestFaults(portal.memberId, plan);
    const started = Date.now();
    const err = await h.t.deps.bitrix.call(await row(), 'profile').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BitrixRetryableError);
    expect((err as BitrixRetryableError).bitrixCode).toBe(code);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('retries a token that expired again after its refresh, with one refresh per expiry', async () => {
    const before = refreshes();
    // Every request expires every token: the refresh helps only until the next request.
    const faults = armRestFaults(portal.memberId, { expireEvery: 1 });
    const calls = await Promise.all(
      Array.from({ length: 10 }, async () =>
        h.t.deps.bitrix.call(await row(), 'profile').catch((e: unknown) => e),
      ),
    );
    for (const e of calls) {
      expect(e).toBeInstanceOf(BitrixRetryableError);
      expect((e as BitrixRetryableError).bitrixCode).toBe('expired_token');
    }
    expect(refreshes() - before).toBeGreaterThan(0);
    expect(refreshes() - before).toBeLessThanOrEqual(faults.expiries);
    // Once the storm is over, calls work again.
    disarmRestFaults(portal.memberId);
    expect(await h.t.deps.bitrix.call(await row(), 'profile')).toMatchObject({ ID: '1' });
  });
});
