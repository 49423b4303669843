import { afterEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import { startPaidDealScenario, seedNewDeals, type PaidDealScenario } from '../helpers/scenario.js';
import { frameRequest, startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { openSession } from './ui/ui-client.js';

/**
 * An admin changes the portal's address (DOCS:settings/how-to-call-rest-api/change-domen.md):
 * the old address answers 302 with the new one in Location, the member_id stays, and the app
 * learns the new address only from authorization data (the OAuth server's `client_endpoint`).
 * Before, the app read a redirect as a permanent failure and kept the old address: every event
 * of the portal failed, and the frame refused the new DOMAIN, until the app was reinstalled.
 */
describe('a renamed portal', () => {
  let s: PaidDealScenario | undefined;
  let h: UiHarness | undefined;
  afterEach(async () => {
    await s?.close();
    await h?.close();
    s = undefined;
    h = undefined;
  });

  it('is called at its new address after one redirect, and its events are processed', async () => {
    s = await startPaidDealScenario();
    const [dealId] = await seedNewDeals(s, 1);
    const oldDomain = s.portal.domain;
    const newDomain = await s.portal.rename();
    expect(newDomain).not.toBe(oldDomain);

    await s.portal.updateDeal(dealId!, { STAGE_ID: 'WON' });
    await s.drain();
    const event = await s.h.t.deps
      .db('events')
      .where({ event: 'ONCRMDEALUPDATE' })
      .orderBy('id', 'desc')
      .first();
    expect(event).toMatchObject({ status: 'processed' });
    expect([
      s.accounting.requests.length,
      s.logistics.requests.length,
      s.sms.requests.length,
    ]).toEqual([1, 1, 1]);
    const row = (await findPortalByMemberId(s.h.t.deps.db, s.portal.memberId))!;
    expect(row.domain).toBe(newDomain);
    expect(row.client_endpoint).toBe(`http://${newDomain}/rest/`);

    // The next change is read at the new address at once: one refresh in all.
    const redirects = async () =>
      (await s!.h.t.deps.metrics.restCalls.get()).values.find(
        (v) => v.labels.outcome === 'PORTAL_MOVED',
      )?.value ?? 0;
    const [second] = await seedNewDeals(s, 1);
    await s.portal.updateDeal(second!, { STAGE_ID: 'WON' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(2);
    expect(await redirects()).toBe(1);
  });

  it('opens the app in the frame at its new DOMAIN', async () => {
    h = await startUiHarness();
    await h.portal.rename();
    const session = await openSession(h);
    expect(session.location).toContain('/ui');
    const row = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    expect(row.domain).toBe(h.portal.domain);
  });

  it('refuses a forged entry under a new DOMAIN before asking the OAuth server anything', async () => {
    h = await startUiHarness();
    const before = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    const { url, init } = frameRequest(h, {
      domain: '127.0.0.1:1',
      applicationToken: 'f'.repeat(32),
    });
    const res = await fetch(url, init);
    expect(res.status).toBe(401);
    // No refresh: the stored tokens are the ones the install stored.
    const after = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    expect(after.access_token_enc).toBe(before.access_token_enc);
  });
});
