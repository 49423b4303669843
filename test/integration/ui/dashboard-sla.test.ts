import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { saveRuleMap } from '../../../server/rules/map-store.js';
import { seedDeals, startUiHarness, uiTestMap, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui-client.js';

/** The dashboard's SLA share per rule and period, and the firing alerts. */
describe('SLA and alerts on the dashboard', () => {
  let h: UiHarness;
  let admin: UiSession;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  beforeAll(async () => {
    h = await startUiHarness();
    const map = uiTestMap(h.sink.url);
    map.rules = map.rules.map((r) => ({ ...r, slaSeconds: 60 }));
    await saveRuleMap(h.t.deps.db, undefined, map, h.t.clock.now());
    // Processed on a clock that does not move: the won deal's invoice is within its SLA, the
    // lost deal's notice failed, so it is not.
    deals = await seedDeals(h);
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
  });

  const row = (html: string, rule: string) =>
    new RegExp(`<tr data-rule="${rule}">(.*?)</tr>`).exec(html)?.[1] ?? '';

  it('shows the share within SLA per rule for 24 h and 7 days, and the total', async () => {
    const page = await getPage(h, '/ui', admin.cookie);
    expect(page.status).toBe(200);
    const won = row(page.html, 'Won deal: invoice');
    expect(won).toContain('<td>1 min</td>');
    expect(won).toContain('class="sla-24h" data-share="1">100 % (1/1)');
    expect(won).toContain('class="sla-7d" data-share="1">100 % (1/1)');
    expect(row(page.html, 'Lost deal: notify')).toContain('data-share="0">0 % (0/1)');
    expect(page.html).toMatch(/id="sla-total">.*50 % \(1\/2\).*50 % \(1\/2\)/);
    expect(page.html).toContain('id="no-alerts"');
  });

  it('lists the SLA alert firing for an event still pending past its SLA', async () => {
    await h.portal.updateDeal(deals.fresh, { STAGE_ID: 'WON' });
    await h.portal.whenIdle();
    await h.services.intake.drain(); // stored, not processed
    h.t.clock.advance(61_000);
    await h.services.alerts.checkOnce();

    const page = await getPage(h, '/ui', admin.cookie);
    expect(page.html).toMatch(/<tr data-alert="sla:[^"]+" data-kind="sla">/);
    expect(page.html).toContain('Events past their SLA');
    expect(page.html).toContain('Won deal: invoice: 1');

    // Processed 61 s after receipt: late, so it counts against the rule's share.
    await h.drain();
    const after = await getPage(h, '/ui', admin.cookie);
    expect(row(after.html, 'Won deal: invoice')).toContain('50 % (1/2)');
  });

  it('shows the SLA table and alerts in Russian', async () => {
    const ru = await openSession(h, { lang: 'ru' });
    const page = await getPage(h, '/ui', ru.cookie);
    expect(page.html).toContain('Доля в пределах SLA');
    expect(page.html).toContain('за 24 ч');
    expect(page.html).toContain('Все правила');
    expect(page.html).toContain('Активные оповещения');
    // Still firing: no check has run since the late event was processed.
    expect(page.html).toContain('События с нарушенным SLA');
  });
});
