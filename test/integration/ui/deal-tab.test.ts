import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seedDeals, startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui-client.js';

/** The deal tab a manager (not an admin) reads in the deal card. */
describe('the deal tab a manager reads', () => {
  let h: UiHarness;
  let ruManager: UiSession;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  beforeAll(async () => {
    h = await startUiHarness();
    deals = await seedDeals(h);
    ruManager = await openSession(h, {
      userId: 2,
      lang: 'ru',
      path: '/placement/deal-tab',
      placement: 'CRM_DEAL_DETAIL_TAB',
    });
  });
  afterAll(async () => {
    await h.close();
  });

  it("says in Russian why a deal's events ran nothing, keeping the rule names as written", async () => {
    await h.portal.updateDeal(deals.fresh, { STAGE_ID: 'PREPARATION' });
    await h.drain();
    const card = await getPage(h, `/ui/deal/${deals.fresh}`, ruManager.cookie);
    expect(card.status).toBe(200);
    expect(card.html).not.toContain('no rule');
    expect(card.html).toContain('ни одно правило не подошло');
    expect(card.html).toContain('нет правил для запуска (Won deal: invoice: STAGE_ID');
    const log = await getPage(h, `/ui/events?entity=${deals.fresh}`, ruManager.cookie);
    expect(log.html).not.toContain('no rule');
    expect(log.html).toContain('ни одно правило не подошло');
  });
});
