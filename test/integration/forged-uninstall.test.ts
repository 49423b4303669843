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
    const forged = new URLSearchParams({
      event: 'ONAPPUNINSTALL',
      'data[LANGUAGE_ID]': 'en',
      'data[CLEAN]': '1',
      ts: String(Math.floor(h.t.clock.now().getTime() / 1000)),
      'auth[domain]': h.portal.domain,
      'auth[member_id]': form.get('member_id')!,
      'auth[application_token]': token,
    });
    const res = await fetch(`${base(h)}/b24/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: forged.toString(),
    });
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
