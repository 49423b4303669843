import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { describeInChromium } from '../helpers/browser-suite.js';
import { appFrameOf } from '../helpers/framed-ui.js';
import { BROWSER_STEP_TIMEOUT_MS, CHROMIUM_ARGS } from '../helpers/chromium.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';

/**
 * The rule builder as an admin edits with it: what a rule written in JSON shows in the form,
 * and the form used from the keyboard alone.
 */
describeInChromium('editing rules in the rule builder', (executablePath) => {
  let h: UiHarness;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    h = await startUiHarness({ appHost: 'localhost' });
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    page = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
    page.setDefaultTimeout(BROWSER_STEP_TIMEOUT_MS);
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  const frame = () => page.frameLocator('iframe.b24emu-frame');
  const appFrame = (): Frame => appFrameOf(page, h.appUrl);
  async function openBuilder(path: string) {
    await page.goto(`${h.portal.url}/app?user=1`);
    await frame().locator('#figures').waitFor();
    await Promise.all([
      appFrame().waitForNavigation(),
      appFrame().evaluate(`location.href = ${JSON.stringify(path)}`),
    ]);
    await frame().locator('html[data-builder-ready="1"]').waitFor();
  }
  const ruleJson = async () =>
    JSON.parse(await frame().locator('#rule-json').inputValue()) as Record<string, unknown>;

  it('shows condition values the portal lists do not offer, and keeps them on an edit', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    // Written in JSON: a user the user list does not hold (inactive, or past its first page)
    // and a stage of a pipeline the portal no longer has.
    const rule = {
      name: 'Operator rule',
      on: ['ONCRMDEALUPDATE'],
      when: [
        { field: 'ASSIGNED_BY_ID', equals: '999' },
        { field: 'STAGE_ID', in: ['WON', 'C7:PAID'] },
      ],
      actions: [{ type: 'sms', to: '+15550001111', text: 'hi' }],
    };
    await f.locator('#rule-json').fill(JSON.stringify(rule));
    const picked = (i: number) =>
      f
        .locator(`#cond-value-${i}`)
        .evaluate((s) =>
          [...(s as unknown as { selectedOptions: Array<{ value: string }> }).selectedOptions].map(
            (o) => o.value,
          ),
        );
    await expect(picked(0)).resolves.toEqual(['999']);
    await expect(picked(1)).resolves.toEqual(['WON', 'C7:PAID']);
    // The admin adds a stage to the list: what was there stays.
    await f.locator('#cond-value-1').selectOption(['WON', 'C7:PAID', 'LOSE']);
    expect((await ruleJson()).when).toEqual([
      { field: 'ASSIGNED_BY_ID', equals: '999' },
      { field: 'STAGE_ID', in: ['WON', 'LOSE', 'C7:PAID'] },
    ]);
  });

  it("brings a step's fields back when its type is switched back", async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    const step = {
      type: 'http',
      name: 'invoice',
      method: 'PUT',
      url: 'https://erp.example.com/invoices',
      headers: { 'X-Source': 'b24' },
    };
    await f
      .locator('#rule-json')
      .fill(JSON.stringify({ name: 'Typed', on: ['ONCRMDEALUPDATE'], actions: [step] }));
    await f.locator('#step-type-0').selectOption('telegram');
    await f.locator('#step-0-text').fill('Deal {{deal.ID}} paid');
    // A type the step never had takes the message text; the name goes along.
    await f.locator('#step-type-0').selectOption('sms');
    await expect(f.locator('#step-0-text').inputValue()).resolves.toBe('Deal {{deal.ID}} paid');
    await f.locator('#step-type-0').selectOption('http');
    expect((await ruleJson()).actions).toEqual([step]);
    // Nothing of the other types went into the rule.
    expect(JSON.stringify(await ruleJson())).not.toContain('paid');
  });

  it('says a validation error next to the field it is about, and moves the keyboard there', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    const rule = {
      name: 'Unfinished',
      on: ['ONCRMDEALUPDATE'],
      actions: [
        { type: 'sms', to: '+15550001111', text: 'ok' },
        { type: 'sms', to: '', text: 'Paid' },
      ],
    };
    await f.locator('#rule-json').fill(JSON.stringify(rule));
    await f.locator('#save-rule').click();
    await f.locator('#rule-errors').waitFor();
    const to = f.locator('#step-1-to');
    await expect(to.getAttribute('aria-invalid')).resolves.toBe('true');
    const note = f.locator(`#${await to.getAttribute('aria-describedby')}`);
    await expect(note.textContent()).resolves.toBe('required; it is empty');
    await expect(appFrame().evaluate<string>('document.activeElement.id')).resolves.toBe(
      'step-1-to',
    );
    // The list above says where it is in the form's words, then the path for the JSON; the
    // first step is not marked.
    await expect(f.locator('#rule-errors li strong').allTextContents()).resolves.toEqual([
      'Step 2, To',
    ]);
    await expect(f.locator('#rule-errors').textContent()).resolves.toContain('$.actions[1].to');
    await expect(f.locator('#step-0-to').getAttribute('aria-invalid')).resolves.toBeNull();
    // The refusal was about the rule as sent: once the field is edited, its note and its
    // line go, and with its only line the list.
    await to.fill('+15550002222');
    await expect(to.getAttribute('aria-invalid')).resolves.toBeNull();
    await expect(f.locator('.field-error').count()).resolves.toBe(0);
    await expect(f.locator('#rule-errors').count()).resolves.toBe(0);
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
  });

  it('keeps the keyboard where it was when a choice redraws the form', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    // A string: the test's tsconfig has no DOM types.
    const focused = () => appFrame().evaluate<string>('document.activeElement.id');
    // A trigger ticked with the space bar: the next Tab goes on from the box, not the top.
    await f.locator('#on-ONCRMDEALADD').focus();
    await page.keyboard.press('Space');
    await expect(focused()).resolves.toBe('on-ONCRMDEALADD');
    // "Add condition" with Enter puts the caret in the new condition's field.
    await f.locator('#add-condition').focus();
    await page.keyboard.press('Enter');
    await expect(focused()).resolves.toBe('cond-field-0');
    // Arrow keys walk a field list (each step is a change) without losing it.
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    await expect(focused()).resolves.toBe('cond-field-0');
    await expect(f.locator('#cond-field-0').inputValue()).resolves.toBe('TITLE');
    await f.locator('#add-step').focus();
    await page.keyboard.press('Enter');
    await expect(focused()).resolves.toBe('step-type-0');
    await page.keyboard.press('ArrowDown');
    await expect(focused()).resolves.toBe('step-type-0');
    expect((await ruleJson()).actions).toEqual([{ type: 'telegram', text: '' }]);
  });
});
