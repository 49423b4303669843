import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import { getRuleMap, saveRuleMap } from '../../server/rules/map-store.js';
import { frameRequest, startUiHarness, uiTestMap, type UiHarness } from '../helpers/ui-harness.js';
import { base } from './ui/ui-client.js';

/**
 * Bitrix24 posts APPLICATION_TOKEN into every user's app frame (bitrix24-protocol.md §1.3),
 * and that token is all that verified an ONAPPUNINSTALL. Before, any user of the portal, an
 * admin or not, could read it in the browser and post an uninstall with "delete app data":
 * the app erased the portal's rules and log and refused the portal's real deliveries from
 * then on, while the app was still installed there.
 */
describe('an ONAPPUNINSTALL forged with the token of the frame POST', () => {
  let h: UiHarness;
  const count = async (table: string) => Number((await h.t.deps.db(table).count({ n: '*' }))[0]!.n);

  beforeAll(async () => {
    h = await startUiHarness();
    await saveRuleMap(h.t.deps.db, h.portal.memberId, uiTestMap(h.sink.url), h.t.clock.now());
  });
  afterAll(async () => {
    await h.close();
  });

  it('leaves the portal installed, with its rules and log, while the portal still has the app', async () => {
    // What a non-admin user's browser posts into the app frame, and so can read.
    const form = new URLSearchParams(String(frameRequest(h, { userId: 2 }).init.body));
    const token = form.get('APPLICATION_TOKEN')!;
    expect(token).toBe(h.portal.applicationToken);
    const eventsBefore = await count('events');
    expect(eventsBefore).toBeGreaterThan(0);
    const res = await postForgedUninstall(h, token);
    // The token is the portal's: the delivery is stored (and logged), as any verified one.
    expect(res.status).toBe(200);
    await h.drain();
    const row = await findPortalByMemberId(h.t.deps.db, h.portal.memberId);
    expect(row).toMatchObject({ status: 'installed' });
    expect(row!.access_token_enc).not.toBeNull();
    expect(await getRuleMap(h.t.deps.db, h.portal.memberId)).toBeDefined();
    const uninstall = await h.t.deps.db('events').where({ event: 'ONAPPUNINSTALL' }).first();
    expect(uninstall.status).toBe('received');
    expect(uninstall.last_error).toContain('not confirmed');
    expect(await count('events')).toBe(eventsBefore + 1);
    // The portal's own deliveries are still taken and processed.
    const deal = await h.portal.addDeal({ TITLE: 'After the forgery', STAGE_ID: 'NEW' });
    await h.drain();
    const last = h.portal.deliveries.at(-1)!;
    expect(last.status).toBe(200);
    const ev = await h.t.deps
      .db('events')
      .where({ entity_id: deal.id, event: 'ONCRMDEALADD' })
      .first();
    expect(ev.status).toBe('skipped');
  });

  it('still honours the real uninstall, which withdraws the app’s credentials', async () => {
    await h.portal.uninstall({ clean: true });
    await h.drain();
    const row = await findPortalByMemberId(h.t.deps.db, h.portal.memberId);
    expect(row).toMatchObject({ status: 'uninstalled', access_token_enc: null });
    expect(await getRuleMap(h.t.deps.db, h.portal.memberId)).toBeUndefined();
  });
});

/** An ONAPPUNINSTALL with "delete app data", posted with the frame's application token. */
function postForgedUninstall(h: UiHarness, token: string) {
  const forged = new URLSearchParams({
    event: 'ONAPPUNINSTALL',
    'data[LANGUAGE_ID]': 'en',
    'data[CLEAN]': '1',
    ts: String(Math.floor(h.t.clock.now().getTime() / 1000)),
    'auth[domain]': h.portal.domain,
    'auth[member_id]': h.portal.memberId,
    'auth[application_token]': token,
  });
  return fetch(`${base(h)}/b24/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: forged.toString(),
  });
}

/**
 * A portal whose subscription has ended refuses the app's calls with PAYMENT_REQUIRED (and,
 * at the next refresh, its refresh too), so app.info cannot confirm an uninstall. The
 * portal was then taken at its word: a user who read the token in the frame could erase the
 * portal's rules and log while it was only behind with a payment.
 */
describe('an ONAPPUNINSTALL forged while the portal subscription has ended', () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness();
    await saveRuleMap(h.t.deps.db, h.portal.memberId, uiTestMap(h.sink.url), h.t.clock.now());
  });
  afterAll(async () => {
    await h.close();
  });

  it('waits with the portal paused instead of erasing it, and is refused once it is renewed', async () => {
    h.portal.endSubscription(true);
    const res = await postForgedUninstall(h, h.portal.applicationToken);
    expect(res.status).toBe(200);
    await h.drain();
    const row = await findPortalByMemberId(h.t.deps.db, h.portal.memberId);
    expect(row).toMatchObject({ status: 'installed', pause_reason: 'payment_required' });
    expect(await getRuleMap(h.t.deps.db, h.portal.memberId)).toBeDefined();
    // Control: the uninstall was looked at, and app.info was refused for the plan.
    expect(h.portal.calls.filter((c) => c.method === 'app.info').at(-1)).toMatchObject({
      error: 'PAYMENT_REQUIRED',
    });
    const uninstall = await h.t.deps.db('events').where({ event: 'ONAPPUNINSTALL' }).first();
    expect(uninstall.status).toBe('received');

    h.portal.endSubscription(false);
    h.t.clock.advance(11 * 60_000);
    await h.drain();
    expect(await findPortalByMemberId(h.t.deps.db, h.portal.memberId)).toMatchObject({
      status: 'installed',
      pause_reason: null,
    });
    const after = await h.t.deps.db('events').where({ event: 'ONAPPUNINSTALL' }).first();
    expect(after.last_error).toContain('not confirmed');
  });
});

/**
 * After an uninstall the OAuth server may answer the app's refresh with `invalid_client`,
 * which the docs gloss "the application may not be installed in Bitrix24"
 * (b24restdocs api-reference/oauth/error-codes.md): that answer confirms the uninstall.
 */
describe('a real uninstall the OAuth server confirms with invalid_client', () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness();
    await saveRuleMap(h.t.deps.db, h.portal.memberId, uiTestMap(h.sink.url), h.t.clock.now());
  });
  afterAll(async () => {
    await h.close();
  });

  it('is acted on at once, not after the portal was paused for it', async () => {
    h.portal.failRefresh('invalid_client');
    await h.portal.uninstall({ clean: true });
    await h.drain();
    const row = await findPortalByMemberId(h.t.deps.db, h.portal.memberId);
    expect(row).toMatchObject({ status: 'uninstalled', access_token_enc: null });
    expect(await getRuleMap(h.t.deps.db, h.portal.memberId)).toBeUndefined();
  });
});
