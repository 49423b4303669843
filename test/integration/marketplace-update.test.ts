import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import { listRuleMaps } from '../../server/rules/map-store.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * The admin installs a new version from the marketplace over the installed one
 * (test/emulator/portal-lifecycle.ts marketplaceUpdate): the installer page opens again, no
 * event arrives until it finishes, then ONAPPINSTALL and ONAPPUPDATE (VERSION 2,
 * PREVIOUS_VERSION 1). Nothing of the portal may be lost on the way.
 */
describe('an update from the marketplace', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario();
  });
  afterEach(async () => {
    await s.close();
  });

  const stored = async () => (await findPortalByMemberId(s.h.t.deps.db, s.portal.memberId))!;
  const bindingKeys = () =>
    s.portal.bindings.map((b) => `${b.event}:${b.eventType}:${b.handler}`).sort();

  async function winDeal(title: string) {
    const deal = await s.portal.addDeal({ TITLE: title, STAGE_ID: 'NEW', OPPORTUNITY: '10.00' });
    await s.drain();
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await s.drain();
    return deal.id;
  }

  it('records the new version and keeps rules, tokens and bindings; events flow as before', async () => {
    await winDeal('Before the update');
    expect(s.accounting.requests).toHaveLength(1);
    const before = await stored();
    const rulesBefore = JSON.stringify(await listRuleMaps(s.h.t.deps.db));
    const bindingsBefore = bindingKeys();

    expect(await s.portal.marketplaceUpdate(2)).toEqual([]);
    expect(s.portal.installState).toBe('installing');
    // The admin opens the app: the installer page again, then BX24.installFinish().
    const page = await s.portal.install();
    expect(page.status).toBe(200);
    const deliveries = await s.portal.finishInstall();
    expect(deliveries.map((d) => [d.event, d.status])).toEqual([
      ['ONAPPINSTALL', 200],
      ['ONAPPUPDATE', 200],
    ]);
    await s.drain();

    const update = await s.h.t.deps
      .db('events')
      .where({ event: 'ONAPPUPDATE' })
      .first<{ status: string; body: string }>();
    expect(update.status).toBe('processed');
    expect(JSON.parse(update.body).data).toMatchObject({ VERSION: '2', PREVIOUS_VERSION: '1' });
    const after = await stored();
    expect(after).toMatchObject({
      status: 'installed',
      app_version: '2',
      application_token_digest: before.application_token_digest,
      pause_reason: null,
    });
    expect(after.access_token_enc).not.toBeNull();
    expect(after.refresh_token_enc).not.toBeNull();
    expect(JSON.stringify(await listRuleMaps(s.h.t.deps.db))).toBe(rulesBefore);
    // Every binding once, as before: nothing lost, nothing doubled.
    expect(bindingKeys()).toEqual(bindingsBefore);

    const dealId = await winDeal('After the update');
    expect(s.accounting.requests).toHaveLength(2);
    expect(JSON.parse(s.accounting.requests[1]!.body)).toMatchObject({ dealId });
    const runs = await s.h.t.deps.db('action_runs').where({ step_name: 'invoice' });
    expect(runs.map((r: { status: string }) => r.status)).toEqual(['succeeded', 'succeeded']);
  });
});
