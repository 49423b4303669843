import { appFrameOf } from '../helpers/framed-ui.js';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { englishIn } from '../helpers/english-words.js';
import { describeInChromium } from '../helpers/browser-suite.js';
import { seedDeals, startUiHarness, type UiHarness } from '../helpers/ui-harness.js';

/** Runs in the page (a string: the test's tsconfig has no DOM types). */
const VISIBLE_TEXTS = `(() => {
  const skip = (el) => !el || el.closest('script,style,pre,code,textarea,datalist,[translate="no"]');
  const out = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.textContent.trim();
    if (t && !skip(n.parentElement)) out.push(t);
  }
  for (const el of document.querySelectorAll('[aria-label],[title],[placeholder]')) {
    if (skip(el)) continue;
    for (const a of ['aria-label', 'title', 'placeholder']) {
      const v = el.getAttribute(a);
      if (v) out.push(v);
    }
  }
  return out;
})()`;

describeInChromium('every page in Russian has no English UI string', (executablePath) => {
  let h: UiHarness;
  let browser: Browser;
  let page: Page;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  /** Page name → the English words found there. */
  const found: Record<string, string[]> = {};
  /** Page name → how many texts were read (the control: the check saw the page). */
  const read: Record<string, number> = {};

  beforeAll(async () => {
    h = await startUiHarness({ appHost: 'localhost', portal: { lang: 'ru' } });
    deals = await seedDeals(h);
    browser = await chromium.launch({
      executablePath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    page = await (await browser.newContext({ locale: 'ru-RU' })).newPage();
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  const frame = () => page.frameLocator('iframe.b24emu-frame');
  const appFrame = (): Frame => appFrameOf(page, h.appUrl);
  async function check(name: string, where: Frame | Page = appFrame()) {
    const texts = (await where.evaluate(VISIBLE_TEXTS)) as string[];
    read[name] = texts.length;
    found[name] = texts.flatMap((t) => englishIn(t).map((w) => `${w} in "${t.slice(0, 80)}"`));
  }
  /** Navigates the app frame (same cookie partition as the portal page). */
  async function go(path: string) {
    const f = appFrame();
    await Promise.all([
      f.waitForNavigation(),
      f.evaluate(`location.href = ${JSON.stringify(path)}`),
    ]);
  }

  it('recognises English and data (control)', () => {
    expect(englishIn('Событие #5 · ONCRMDEALUPDATE 2026-11-27 13:00:00 (UTC+3)')).toEqual([]);
    expect(englishIn('$.rules[0].url: ожидается строка, получено "x"')).toEqual([]);
    expect(englishIn('Retry now')).toEqual(['Retry', 'now']);
    expect(englishIn('ожидается string')).toEqual(['string']);
  });

  it('walks the dashboard, the log, events, the deal tab and the settings', async () => {
    await page.goto(`${h.portal.url}/app?user=1`);
    await frame().locator('#figures').waitFor();
    await check('dashboard');
    await go('/ui/events?all=1');
    await check('log');
    const failedId = Number(
      (await h.t.deps.db('events').where({ status: 'failed' }).first('id')).id,
    );
    const processedId = Number(
      (await h.t.deps.db('events').where({ status: 'processed' }).first('id')).id,
    );
    await go(`/ui/events/${failedId}`);
    await check('failed event');
    await go(`/ui/events/${processedId}`);
    await check('processed event');
    await go('/ui/subscriptions');
    await check('subscriptions');
    await go('/ui/retention');
    await check('retention');
    await go('/ui/alerts');
    await frame().locator('input[name=telegram]').fill('not a chat');
    await frame().locator('#save-alerts').click();
    await frame().locator('#alert-errors').waitFor();
    await check('alerts with errors');
    // This portal has no alert channel of its own: the test is refused, in Russian too.
    await frame().locator('#test-alert').click();
    await frame().locator('#test-refused').waitFor();
    await check('test alert refused');
  });

  it('walks the rules page with validation errors and a dry run', async () => {
    await go('/ui/rules');
    await frame().locator('#json-editor > summary').click();
    await check('rules');
    await frame()
      .locator('#map')
      .fill(
        '{"rules":[{"name":"r","on":["ONCRMDEALADD"],"when":[{"field":"STAGE_ID"}],"actions":[{"type":"http","method":"POST","url":5,"extra":1}]}]}',
      );
    await frame().locator('#save-rules').click();
    await frame().locator('#map-errors').waitFor();
    await check('rules with errors');
    await go('/ui/rules');
    await frame().locator('#json-editor > summary').click();
    await frame().locator('input[name=id]').fill(deals.won);
    await frame().locator('#dry-run').click();
    await frame().locator('#dry-run-result').waitFor();
    await check('dry run');
  });

  it('walks the rule builder, new and with a rule, its pickers filled', async () => {
    await go('/ui/rules/new');
    await frame().locator('html[data-builder-ready="1"]').waitFor();
    await check('rule builder');
    await go(`/ui/rules/edit?name=${encodeURIComponent('Won deal: invoice')}`);
    await frame().locator('html[data-builder-ready="1"]').waitFor();
    await frame().locator('#step-0-pick').waitFor();
    await check('rule builder, a rule');
  });

  it('walks the rule builder as an admin who builds, is refused, removes and saves', async () => {
    await go('/ui/rules/new');
    const f = frame();
    await f.locator('html[data-builder-ready="1"]').waitFor();
    // Refused on the server: a header name with a space, an empty recipient; then, valid,
    // a masked secret with none stored.
    const refused = async (rule: unknown, name: string) => {
      await f.locator('#rule-json').fill(JSON.stringify(rule));
      await f.locator('#save-rule').click();
      await f.locator('#rule-errors').waitFor();
      await check(name);
    };
    const http = { type: 'http', method: 'POST', url: 'https://erp.example/x' };
    await refused(
      {
        name: 'Отказ',
        on: ['ONCRMDEALADD'],
        actions: [
          { ...http, headers: { 'X Token': 'a' } },
          { type: 'sms', to: '', text: 'x' },
        ],
      },
      'rule builder, invalid',
    );
    // Each error where it is in the form, in Russian.
    await expect(f.locator('#rule-errors li strong').allTextContents()).resolves.toContain(
      'Шаг 2, Кому',
    );
    // Editing one marked field takes its line away; the others stay until the next save.
    const lines = await f.locator('#rule-errors li').count();
    await f.locator('#step-1-to').fill('+15550001111');
    await expect(f.locator('#rule-errors li').count()).resolves.toBe(lines - 1);
    await expect(f.locator('#rule-errors li strong').allTextContents()).resolves.not.toContain(
      'Шаг 2, Кому',
    );
    await refused(
      {
        name: 'Отказ',
        on: ['ONCRMDEALADD'],
        actions: [{ ...http, headers: { Authorization: '********' } }],
      },
      'rule builder, no stored secret',
    );
    await expect(f.locator('#rule-errors').textContent()).resolves.toMatch(/секрет не сохранён/);
    // Refused in the form: an event name in words, a header twice, a value with no name.
    await f.locator('#rule-json').fill(
      JSON.stringify({
        name: 'Форма',
        on: ['ONCRMDEALUPDATE'],
        actions: [{ type: 'http', method: 'POST', url: 'https://erp.example/x' }],
      }),
    );
    await f.locator('#on-other').fill('сделка');
    await f.locator('#on-add').click();
    await f.locator('#step-0-headers-add').click();
    await f.locator('#step-0-headers-k-0').fill('X-Key');
    await f.locator('#step-0-headers-add').click();
    await f.locator('#step-0-headers-k-1').fill('x-key');
    await f.locator('#step-0-body-add').click();
    await f.locator('#step-0-body-v-0').fill('1');
    await f.locator('#step-0-pick-insert').click();
    await f.locator('#save-rule').click();
    await check('rule builder, refused in the form');
    // Removed and offered back; then saved on an event the portal is not subscribed to.
    await f.locator('#step-remove-0').click();
    await f.locator('#undo-bar').waitFor();
    await check('rule builder, undo');
    await f.locator('#undo-remove').click();
    await f.locator('#rule-json').fill(
      JSON.stringify({
        name: 'Удаление',
        on: ['ONCRMDEALDELETE'],
        actions: [{ type: 'sms', to: '+15550001111', text: 'x' }],
      }),
    );
    await f.locator('#on-other').fill('');
    await f.locator('#save-rule').click();
    await f.locator('#rule-warnings').waitFor();
    await check('rule builder, saved with a warning');
  });

  it('walks the replay pages', async () => {
    await go('/ui/replay');
    await check('replay');
    await frame().locator('input[name=from]').fill('2026-11-27');
    await frame().locator('input[name=to]').fill('2026-11-27');
    await frame().locator('#preview').click();
    await frame().locator('#replay-count').waitFor();
    await check('replay preview');
    await frame().locator('#confirm').click();
    await frame().locator('#replay-queued').waitFor();
    await check('replay progress');
  });

  it('walks the deal tab, the error pages and the installer page', async () => {
    await page.goto(`${h.portal.url}/crm/deal/details/${deals.won}/?user=1`);
    await frame().locator('#deal-events').waitFor();
    await check('deal tab');
    await go('/ui/events/999999');
    await check('not found');
    await page.goto(`${h.portal.url}/app?user=2`);
    await frame().locator('#figures').waitFor();
    await go('/ui/replay');
    await check('forbidden');
    const install = await browser.newPage();
    await install.setContent(h.installHtml.replace(/<script[\s\S]*?<\/script>/g, ''));
    await check('installer', install);
    await install.close();
  });

  it('keeps the language the portal was installed in (alerts use it)', async () => {
    const row = await h.t.deps.db('portals').where({ member_id: h.portal.memberId }).first();
    expect(row.lang).toBe('ru');
  });

  it('found no English string on any page', () => {
    expect(Object.keys(read).length).toBeGreaterThanOrEqual(23);
    for (const n of Object.values(read)) expect(n).toBeGreaterThan(0);
    const bad = Object.fromEntries(Object.entries(found).filter(([, v]) => v.length > 0));
    expect(bad).toEqual({});
  });
});
