import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { chromium, type Browser, type Dialog, type Frame, type Page } from 'playwright-core';
import { getRuleMap, saveRuleMap } from '../../server/rules/map-store.js';
import type { HttpAction } from '../../server/rules/model.js';
import { describeInChromium } from '../helpers/browser-suite.js';
import { appFrameOf } from '../helpers/framed-ui.js';
import { BROWSER_STEP_TIMEOUT_MS, CHROMIUM_ARGS } from '../helpers/chromium.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';

/**
 * The rule builder as a portal admin who never writes JSON uses it: builds a rule in the
 * form, saves, reopens and edits it.
 */
describeInChromium('the rule builder for an admin who does not write JSON', (executablePath) => {
  let h: UiHarness;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    // Telegram and SMS set up (the steps built here are saved, not sent): no warning of a
    // channel the server lacks.
    h = await startUiHarness({
      appHost: 'localhost',
      env: {
        TELEGRAM_BOT_TOKEN: '123456:builder-test',
        TELEGRAM_API_URL: 'http://127.0.0.1:9',
        SMS_PROVIDER: 'generic',
        SMS_URL: 'http://127.0.0.1:9/sms',
      },
    });
    await saveRuleMap(h.t.deps.db, h.portal.memberId, { rules: [] }, h.t.clock.now());
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
  /**
   * Whether the app's frame is open with a live session. Opened once, as an admin who moves
   * from page to page inside the app; a test that ends the session or the rights sets it back.
   */
  let entered = false;
  async function openBuilder(path: string) {
    if (!entered || !page.url().startsWith(`${h.portal.url}/app`)) {
      await page.goto(`${h.portal.url}/app?user=1`);
      await frame().locator('#figures').waitFor();
      entered = true;
    }
    // The last test's unsaved edits: leaving them is what the admin asks for here.
    const leave = (d: Dialog) => {
      if (d.type() === 'beforeunload') void d.accept();
    };
    page.on('dialog', leave);
    try {
      await Promise.all([
        appFrame().waitForNavigation(),
        appFrame().evaluate(`location.href = ${JSON.stringify(path)}`),
      ]);
    } finally {
      page.off('dialog', leave);
    }
    await frame().locator('html[data-builder-ready="1"]').waitFor();
  }
  const ruleJson = async () =>
    JSON.parse(await frame().locator('#rule-json').inputValue()) as Record<string, unknown>;
  const storedStep = async (rule: string, i: number) => {
    const map = await getRuleMap(h.t.deps.db, h.portal.memberId);
    return map!.rules.find((r) => r.name === rule)!.actions[i] as HttpAction;
  };
  /** Builds "deal won → http POST with a header and a body field → telegram" in the form. */
  async function buildWonDeal(name: string) {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#rule-name').fill(name);
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-0').selectOption('STAGE_ID');
    await f.locator('#cond-op-0').selectOption('becomes');
    await f.locator('#cond-value-0').selectOption('WON');
    await f.locator('#add-step').click();
    await f.locator('#step-name-0').fill('erp');
    await f.locator('#step-0-url').fill(`${h.sink.url}/invoices`);
    await f.locator('#step-0-headers-add').click();
    await f.locator('#step-0-headers-k-0').fill('Authorization');
    await f.locator('#step-0-headers-v-0').fill('Bearer tok-123456');
    await f.locator('#step-0-body-add').click();
    await f.locator('#step-0-body-k-0').fill('dealId');
    await f.locator('#step-0-body-v-0').fill('{{deal.ID}}');
    await f.locator('#add-step').click();
    await f.locator('#step-type-1').selectOption('telegram');
    // No chat named yet, and the portal has no alert chat: the step says it has nowhere to go.
    await expect(f.locator('#step-1-nochat').isVisible()).resolves.toBe(true);
    await f.locator('#step-1-chatId').fill('-1001234567890');
    await expect(f.locator('#step-1-nochat').isHidden()).resolves.toBe(true);
    await expect(f.locator('#step-1-unset').count()).resolves.toBe(0);
    await f.locator('#step-1-text').fill('Deal {{deal.ID}} won');
    await f.locator('#save-rule').click();
    // Saved, or refused with the reason in the failure rather than a wait that never ends.
    await f.locator('#rule-saved, #rule-errors').first().waitFor();
    expect(await f.locator('#rule-errors').allTextContents()).toEqual([]);
  }

  it('calls the page the rule’s edit page once a new rule is saved, and after a rename', async () => {
    await buildWonDeal('Heading');
    const f = frame();
    await expect(f.locator('h1').textContent()).resolves.toBe('Edit rule: Heading');
    await f.locator('#rule-name').fill('Heading 2');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    await expect(f.locator('h1').textContent()).resolves.toBe('Edit rule: Heading 2');
  });

  it('keeps a step’s stored secret when only the step’s name changes', async () => {
    await buildWonDeal('Won deal: ERP');
    await openBuilder(`/ui/rules/edit?name=${encodeURIComponent('Won deal: ERP')}`);
    const f = frame();
    await expect(f.locator('#step-0-headers-v-0').inputValue()).resolves.toBe('********');
    await f.locator('#step-name-0').fill('erp-invoice');
    await f.locator('#save-rule').click();
    await f.locator('#save-result > *').waitFor();
    await expect(f.locator('#rule-errors').count()).resolves.toBe(0);
    const step = await storedStep('Won deal: ERP', 0);
    expect(step.name).toBe('erp-invoice');
    const header = step.headers!.Authorization as { $enc: string };
    expect(h.t.deps.box.decrypt(header.$enc)).toBe('Bearer tok-123456');
    // Renamed again and the rule too, in one save, after a type switch and back.
    await f.locator('#rule-name').fill('Won deal: ERP v2');
    await f.locator('#step-type-0').selectOption('sms');
    await f.locator('#step-type-0').selectOption('http');
    await f.locator('#step-name-0').fill('invoice');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    const again = await storedStep('Won deal: ERP v2', 0);
    expect(again.name).toBe('invoice');
    expect(h.t.deps.box.decrypt((again.headers!.Authorization as { $enc: string }).$enc)).toBe(
      'Bearer tok-123456',
    );
    expect((await ruleJson()).name).toBe('Won deal: ERP v2');
  });

  it('keeps a header’s stored secret when only the header’s name changes', async () => {
    await buildWonDeal('Header renamed');
    await openBuilder(`/ui/rules/edit?name=${encodeURIComponent('Header renamed')}`);
    const f = frame();
    await expect(f.locator('#step-0-headers-v-0').inputValue()).resolves.toBe('********');
    await f.locator('#step-0-headers-k-0').fill('X-Auth');
    // A type switch and back redraws the rows: they still know what they were saved as.
    await f.locator('#step-type-0').selectOption('sms');
    await f.locator('#step-type-0').selectOption('http');
    await f.locator('#save-rule').click();
    await f.locator('#save-result > *').waitFor();
    await expect(f.locator('#rule-errors').count()).resolves.toBe(0);
    const step = await storedStep('Header renamed', 0);
    expect(Object.keys(step.headers!)).toEqual(['X-Auth']);
    expect(h.t.deps.box.decrypt((step.headers!['X-Auth'] as { $enc: string }).$enc)).toBe(
      'Bearer tok-123456',
    );
    // Saved, then renamed again: from what it is saved as now.
    await f.locator('#step-0-headers-k-0').fill('X-Token');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    const again = await storedStep('Header renamed', 0);
    expect(h.t.deps.box.decrypt((again.headers!['X-Token'] as { $enc: string }).$enc)).toBe(
      'Bearer tok-123456',
    );
  });

  it('renames the later steps’ {{steps.…}} with the step they name', async () => {
    await buildWonDeal('Step references');
    const f = frame();
    await f
      .locator('#step-1-text')
      .fill('Invoice {{steps.erp.response.id}}: {{ steps.erp.status }}');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    await f.locator('#step-name-0').fill('invoice');
    // Clicking into another field renames them and leaves the keyboard there.
    await f.locator('#step-1-chatId').click();
    await page.keyboard.press('End');
    await page.keyboard.type('9');
    await expect(f.locator('#step-1-chatId').inputValue()).resolves.toBe('-10012345678909');
    await expect(f.locator('#step-name-0').inputValue()).resolves.toBe('invoice');
    // And a field filled right after (its text selected, then replaced) is filled as typed.
    await f.locator('#step-name-0').fill('inv');
    await f.locator('#step-0-headers-k-0').fill('X-Auth');
    await f.locator('#save-rule').click();
    await f.locator('#save-result > *').waitFor();
    await expect(f.locator('#rule-errors').count()).resolves.toBe(0);
    const text = 'Invoice {{steps.inv.response.id}}: {{ steps.inv.status }}';
    await expect(f.locator('#step-1-text').inputValue()).resolves.toBe(text);
    const map = await getRuleMap(h.t.deps.db, h.portal.memberId);
    const saved = map!.rules.find((r) => r.name === 'Step references')!;
    expect(Object.keys((saved.actions[0] as HttpAction).headers!)).toEqual(['X-Auth']);
    expect(saved.actions.map((a) => [a.name, (a as { text?: string }).text])).toEqual([
      ['inv', undefined],
      [undefined, text],
    ]);
  });

  it('keeps a step’s and a header’s stored secret when they are renamed in the JSON', async () => {
    await buildWonDeal('Renamed in JSON');
    await openBuilder(`/ui/rules/edit?name=${encodeURIComponent('Renamed in JSON')}`);
    const f = frame();
    // Typed in the JSON box, a character at a time, as an admin edits it.
    const json = f.locator('#rule-json');
    const text = await json.inputValue();
    await json.fill(text.replace('"name": "erp"', '"name": "er"'));
    await json.fill(text.replace('"name": "erp"', '"name": "erp-2"'));
    await json.fill(
      (await json.inputValue()).replace('"Authorization": "********"', '"X-Auth": "********"'),
    );
    await f.locator('#save-rule').click();
    await f.locator('#save-result > *').waitFor();
    await expect(f.locator('#rule-errors').count()).resolves.toBe(0);
    const step = await storedStep('Renamed in JSON', 0);
    expect([step.name, Object.keys(step.headers!)]).toEqual(['erp-2', ['X-Auth']]);
    expect(h.t.deps.box.decrypt((step.headers!['X-Auth'] as { $enc: string }).$enc)).toBe(
      'Bearer tok-123456',
    );
  });

  it('keeps each name/value row on one line in a 600 px frame', async () => {
    await page.setViewportSize({ width: 632, height: 900 });
    try {
      await buildWonDeal('Narrow frame');
      const f = frame();
      await expect(
        appFrame().evaluate<number>('document.documentElement.clientWidth'),
      ).resolves.toBe(600);
      await f.locator('#step-0-headers-add').click();
      for (const key of ['headers', 'body']) {
        const rows = f.locator(`#step-0-${key} .row`);
        for (let j = 0; j < (await rows.count()); j++) {
          const boxes = await rows
            .nth(j)
            .locator('input, button')
            .evaluateAll((els) =>
              els.map((e) => {
                const r = e.getBoundingClientRect();
                return { middle: r.top + r.height / 2, width: Math.round(r.width) };
              }),
            );
          expect(boxes).toHaveLength(3);
          // Name, value and Remove side by side, the value the widest.
          const middles = boxes.map((b) => b.middle);
          expect(Math.max(...middles) - Math.min(...middles)).toBeLessThan(4);
          expect(boxes[1]!.width).toBeGreaterThan(boxes[0]!.width);
        }
      }
    } finally {
      await page.setViewportSize({ width: 1100, height: 900 });
    }
  });

  it('says a condition’s refusal under its row in a 600 px frame, its lists kept readable', async () => {
    await page.setViewportSize({ width: 632, height: 900 });
    try {
      await buildWonDeal('Narrow refusal');
      const f = frame();
      await f.locator('#cond-op-0').selectOption('in');
      await f.locator('#cond-value-0').selectOption([]);
      await f.locator('#save-rule').click();
      await f.locator('#rule-errors').waitFor();
      const box = (sel: string) =>
        f.locator(sel).evaluate((e) => {
          const r = e.getBoundingClientRect();
          return { top: r.top, bottom: r.bottom, width: r.width };
        });
      const note = `#${await f.locator('#cond-value-0').getAttribute('aria-describedby')}`;
      await expect(f.locator(note).textContent()).resolves.toMatch(/at least one/);
      // The note is under the row, and the stage list keeps room for the stages' names.
      expect((await box(note)).top).toBeGreaterThanOrEqual((await box('#cond-0')).bottom);
      expect((await box('#cond-value-0')).width).toBeGreaterThan(150);
    } finally {
      await page.setViewportSize({ width: 1100, height: 900 });
    }
  });

  it('refuses an invalid event name and repeated names next to the field, keeping the text', async () => {
    await buildWonDeal('Refusals');
    const f = frame();
    const focused = () => appFrame().evaluate<string>('document.activeElement.id');
    const noteOf = async (id: string) =>
      f.locator(`#${await f.locator(id).getAttribute('aria-describedby')}`).textContent();
    // An event name typed in words: said next to the box, the text stays, the keyboard too.
    await f.locator('#on-other').fill('deal lost');
    await f.locator('#on-add').click();
    await expect(noteOf('#on-other')).resolves.toMatch(/Not an event name/);
    await expect(f.locator('#on-other').inputValue()).resolves.toBe('deal lost');
    await expect(focused()).resolves.toBe('on-other');
    expect((await ruleJson()).on).toEqual(['ONCRMDEALUPDATE']);
    // Corrected and added with Enter.
    await f.locator('#on-other').fill('oncrmdealdelete');
    await page.keyboard.press('Enter');
    await expect(f.locator('#on-other-error').count()).resolves.toBe(0);
    expect((await ruleJson()).on).toEqual(['ONCRMDEALUPDATE', 'ONCRMDEALDELETE']);

    // A second header of the same name (in another case) and a body value with no name.
    await f.locator('#step-0-headers-add').click();
    await f.locator('#step-0-headers-k-1').fill('authorization');
    await f.locator('#step-0-headers-v-1').fill('Bearer other-token');
    await expect(noteOf('#step-0-headers-k-1')).resolves.toMatch(/already used/);
    await f.locator('#step-0-body-add').click();
    await f.locator('#step-0-body-v-1').fill('{{deal.TITLE}}');
    await expect(noteOf('#step-0-body-k-1')).resolves.toMatch(/Give this value a name/);
    // An event typed but not added.
    await f.locator('#on-other').fill('ONCRMDEALADD');
    const before = await getRuleMap(h.t.deps.db, h.portal.memberId);
    await f.locator('#save-rule').click();
    const errors = await f.locator('#rule-errors li').allTextContents();
    expect(errors).toHaveLength(3);
    expect(errors.join('\n')).toMatch(/already used[^]*Give this value a name/);
    await expect(noteOf('#on-other')).resolves.toMatch(/Press "Add event"/);
    // The keyboard goes to the first of them, from the top.
    await expect(focused()).resolves.toBe('on-other');
    expect(await getRuleMap(h.t.deps.db, h.portal.memberId)).toEqual(before);
    // Nothing typed was lost: the rows are all there.
    await expect(f.locator('#step-0-headers-v-1').inputValue()).resolves.toBe('Bearer other-token');
    await expect(f.locator('#step-0-body-v-1').inputValue()).resolves.toBe('{{deal.TITLE}}');
    // Fixed: saved with every row.
    await f.locator('#step-0-headers-k-1').fill('X-Api-Key');
    await f.locator('#step-0-body-k-1').fill('title');
    await f.locator('#on-other').fill('');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    const step = await storedStep('Refusals', 0);
    expect(Object.keys(step.headers!)).toEqual(['Authorization', 'X-Api-Key']);
    expect(step.body).toEqual({ dealId: '{{deal.ID}}', title: '{{deal.TITLE}}' });
  });

  it('puts back a removed step or condition with Undo, from the keyboard', async () => {
    await buildWonDeal('Undo');
    await openBuilder(`/ui/rules/edit?name=${encodeURIComponent('Undo')}`);
    const f = frame();
    const focused = () => appFrame().evaluate<string>('document.activeElement.id');
    const before = await ruleJson();
    // The http step with its header token goes: the keyboard lands on Undo, Enter brings it back.
    await f.locator('#step-remove-0').focus();
    await page.keyboard.press('Enter');
    await expect(f.locator('#undo-bar').textContent()).resolves.toMatch(/Removed step 1.*erp/);
    expect((await ruleJson()).actions).toHaveLength(1);
    await expect(focused()).resolves.toBe('undo-remove');
    await page.keyboard.press('Enter');
    expect(await ruleJson()).toEqual(before);
    await expect(focused()).resolves.toBe('step-type-0');
    await expect(f.locator('#undo-bar').count()).resolves.toBe(0);
    // The condition too.
    await f.locator('#cond-remove-0').click();
    await expect(f.locator('#undo-bar').textContent()).resolves.toMatch(/STAGE_ID becomes WON/);
    await f.locator('#undo-remove').click();
    expect(await ruleJson()).toEqual(before);
    await expect(focused()).resolves.toBe('cond-field-0');
    // Restored, the step keeps its stored secret: the save asks for nothing.
    await f.locator('#step-remove-0').click();
    await f.locator('#undo-remove').click();
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    const step = await storedStep('Undo', 0);
    expect(h.t.deps.box.decrypt((step.headers!.Authorization as { $enc: string }).$enc)).toBe(
      'Bearer tok-123456',
    );
  });

  it('moves a step up and down from the keyboard, the moved step keeping its stored secret', async () => {
    await buildWonDeal('Moved');
    await openBuilder(`/ui/rules/edit?name=${encodeURIComponent('Moved')}`);
    const f = frame();
    const focused = () => appFrame().evaluate<string>('document.activeElement.id');
    const types = async () =>
      ((await ruleJson()).actions as Array<{ type: string }>).map((a) => a.type);
    await expect(f.locator('#step-down-0').getAttribute('aria-label')).resolves.toBe(
      'Move step 1 down',
    );
    // The first step has no "Up", the last no "Down".
    await expect(f.locator('#step-up-0').count()).resolves.toBe(0);
    await expect(f.locator('#step-down-1').count()).resolves.toBe(0);
    await f.locator('#step-down-0').focus();
    await page.keyboard.press('Enter');
    expect(await types()).toEqual(['telegram', 'http']);
    // The keyboard stays with the moved step: on its other arrow, the list ending there.
    await expect(focused()).resolves.toBe('step-up-1');
    await expect(f.locator('#step-1 > legend').textContent()).resolves.toBe('2. HTTP request');
    // Which step went where is said for screen readers (the button names only the place).
    await expect(f.locator('#builder-status').textContent()).resolves.toBe(
      'HTTP request (erp) is now step 2.',
    );
    await page.keyboard.press('Enter');
    expect(await types()).toEqual(['http', 'telegram']);
    await expect(focused()).resolves.toBe('step-down-0');
    await page.keyboard.press('Enter');
    // Moved and its name taken away, the step is still the one saved as "erp".
    await f.locator('#step-name-1').fill('');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    const step = await storedStep('Moved', 1);
    expect([step.type, step.name]).toEqual(['http', undefined]);
    expect(h.t.deps.box.decrypt((step.headers!.Authorization as { $enc: string }).$enc)).toBe(
      'Bearer tok-123456',
    );
    expect((await storedStep('Moved', 0)).type).toBe('telegram');
  });

  it('carries a refusal’s lines and notes with a step that is moved, removed or put back', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#rule-name').fill('Carried');
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-step').click();
    await f.locator('#step-0-url').fill(`${h.sink.url}/x`);
    await f.locator('#add-step').click();
    await f.locator('#step-type-1').selectOption('telegram');
    await f.locator('#add-step').click();
    await f.locator('#step-type-2').selectOption('email');
    await f.locator('#step-2-subject').fill('Deal won');
    await f.locator('#save-rule').click();
    await f.locator('#rule-errors').waitFor();
    const lines = () => f.locator('#rule-errors li strong').allTextContents();
    const invalid = (id: string) => f.locator(`#${id}`).getAttribute('aria-invalid');
    const noteOf = async (id: string) =>
      f.locator(`#${await f.locator(`#${id}`).getAttribute('aria-describedby')}`).textContent();
    await expect(lines()).resolves.toEqual(['Step 2, Text', 'Step 3, To']);
    // The e-mail step moved up: its lines and notes say where it is now, and come first.
    await f.locator('#step-up-2').click();
    await expect(lines()).resolves.toEqual(['Step 2, To', 'Step 3, Text']);
    await expect(invalid('step-1-to')).resolves.toBe('true');
    await expect(noteOf('step-2-text')).resolves.toMatch(/required/);
    // Removed: its lines go with it; the Telegram step's follow it to its place.
    await f.locator('#step-remove-1').click();
    await expect(lines()).resolves.toEqual(['Step 2, Text']);
    await expect(invalid('step-1-text')).resolves.toBe('true');
    // Put back: the Telegram step is third again, still marked.
    await f.locator('#undo-remove').click();
    await expect(lines()).resolves.toEqual(['Step 3, Text']);
    await expect(invalid('step-2-text')).resolves.toBe('true');
    // Its field edited, the last line goes, and the list with it.
    await f.locator('#step-2-text').fill('Deal {{deal.ID}} won');
    await expect(f.locator('#rule-errors').count()).resolves.toBe(0);
    await expect(f.locator('.field-error').count()).resolves.toBe(0);
    // Refused again, then the JSON edited (which may move anything): the refusal goes, rather
    // than its notes landing on whatever step now has that number.
    await f.locator('#step-2-text').fill('');
    await f.locator('#save-rule').click();
    await f.locator('#rule-errors').waitFor();
    const json = (await ruleJson()) as { actions: unknown[] };
    json.actions.splice(0, 1);
    await f.locator('#rule-json').fill(JSON.stringify(json, null, 2));
    await expect(f.locator('#rule-errors').count()).resolves.toBe(0);
    await expect(f.locator('.field-error').count()).resolves.toBe(0);
  });

  it('says why an empty rule is not saved next to the name, the events and the steps', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#save-rule').click();
    await f.locator('#rule-errors').waitFor();
    const noteOf = async (id: string) =>
      f.locator(`#${await f.locator(id).getAttribute('aria-describedby')}`);
    // The trigger's note comes after the list of events, not inside it among the boxes.
    const on = await noteOf('#on-ONCRMDEALADD');
    await expect(on.textContent()).resolves.toMatch(/at least|>=1/);
    await expect(f.locator('#rule-on .events .field-error').count()).resolves.toBe(0);
    await expect(
      on.evaluate((n) => (n.previousElementSibling as { className?: string } | null)?.className),
    ).resolves.toBe('events');
    // No steps: said beside "Add step".
    await expect(f.locator('#add-step').getAttribute('aria-invalid')).resolves.toBe('true');
    await expect((await noteOf('#add-step')).textContent()).resolves.toMatch(/>=1|at least/);
    await expect(f.locator('#rule-name').getAttribute('aria-invalid')).resolves.toBe('true');
  });

  it('keeps a condition and the template picker on one line in a 600 px frame', async () => {
    await page.setViewportSize({ width: 632, height: 900 });
    try {
      await openBuilder('/ui/rules/new');
      const f = frame();
      await f.locator('#on-ONCRMDEALUPDATE').check();
      await f.locator('#add-condition').click();
      await f.locator('#cond-field-0').selectOption('STAGE_ID');
      await f.locator('#cond-op-0').selectOption('becomes');
      await f.locator('#cond-value-0').selectOption('WON');
      const box = (id: string) =>
        f.locator(id).evaluate((e) => {
          const r = e.getBoundingClientRect();
          return { middle: r.top + r.height / 2, right: r.right, width: r.width };
        });
      const field = await box('#cond-field-0');
      const op = await box('#cond-op-0');
      const remove = await box('#cond-remove-0');
      const fieldset = await box('#rule-when');
      // Field, operator, value and Remove side by side, inside the frame, the operator readable.
      expect(Math.abs(remove.middle - field.middle)).toBeLessThan(12);
      expect(remove.right).toBeLessThanOrEqual(fieldset.right);
      // A step's template picker: Insert beside the list, inside the step.
      await f.locator('#add-step').click();
      const pick = await box('#step-0-pick');
      const insert = await box('#step-0-pick-insert');
      expect(Math.abs(insert.middle - pick.middle)).toBeLessThan(12);
      expect(insert.right).toBeLessThanOrEqual((await box('#step-0')).right);
      const opText = await f
        .locator('#cond-op-0')
        .evaluate((e) => (e as unknown as { scrollWidth: number }).scrollWidth);
      expect(op.width).toBeGreaterThanOrEqual(opText);
    } finally {
      await page.setViewportSize({ width: 1100, height: 900 });
    }
  });

  /** The types of the dialogs the page opens, each dismissed (staying on the page). */
  function recordDialogs(): { asked: string[]; stop: () => void } {
    const asked: string[] = [];
    const onDialog = (d: { type(): string; dismiss(): Promise<void> }) => {
      asked.push(d.type());
      void d.dismiss();
    };
    page.on('dialog', onDialog);
    return { asked, stop: () => page.off('dialog', onDialog) };
  }

  it('asks before leaving with unsaved edits, and not after a save', async () => {
    await buildWonDeal('Leaving');
    await openBuilder(`/ui/rules/edit?name=${encodeURIComponent('Leaving')}`);
    const f = frame();
    const { asked, stop } = recordDialogs();
    try {
      await f.locator('#step-1-text').click();
      await f.locator('#step-1-text').fill('Deal {{deal.ID}} won, well done');
      // "All rules" with an edit not saved: the browser asks; staying keeps the edit.
      await f.locator('#back-to-rules').click();
      expect(asked).toEqual(['beforeunload']);
      await expect(f.locator('#step-1-text').inputValue()).resolves.toBe(
        'Deal {{deal.ID}} won, well done',
      );
      // Saved: leaving asks nothing.
      await f.locator('#save-rule').click();
      await f.locator('#rule-saved').waitFor();
      await Promise.all([appFrame().waitForNavigation(), f.locator('#back-to-rules').click()]);
      expect(asked).toEqual(['beforeunload']);
      expect(appFrame().url()).toMatch(/\/ui\/rules(\?|$)/);
    } finally {
      stop();
    }
  });

  it('asks before leaving with an event name typed but not added, or a half-typed JSON edit', async () => {
    await buildWonDeal('Leaving typed');
    await openBuilder(`/ui/rules/edit?name=${encodeURIComponent('Leaving typed')}`);
    const f = frame();
    const { asked, stop } = recordDialogs();
    try {
      await f.locator('#on-other').fill('ONCRMLEADADD');
      await f.locator('#back-to-rules').click();
      expect(asked).toEqual(['beforeunload']);
      await expect(f.locator('#on-other').inputValue()).resolves.toBe('ONCRMLEADADD');
      await f.locator('#on-other').fill('');
      const json = await f.locator('#rule-json').inputValue();
      await f.locator('#rule-json').fill(json.replace(/\n}$/, ',\n}'));
      await f.locator('#json-error').waitFor();
      await f.locator('#back-to-rules').click();
      expect(asked).toEqual(['beforeunload', 'beforeunload']);
      // Control: the JSON put right again (the rule as saved), leaving asks nothing.
      await f.locator('#rule-json').fill(json);
      await Promise.all([appFrame().waitForNavigation(), f.locator('#back-to-rules').click()]);
      expect(asked).toEqual(['beforeunload', 'beforeunload']);
    } finally {
      stop();
    }
  });

  it('says when a saved rule listens to an event the portal is not subscribed to', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#rule-name').fill('Deleted deal');
    await f.locator('#on-ONCRMDEALDELETE').check();
    await f.locator('#add-step').click();
    await f.locator('#step-type-0').selectOption('sms');
    await f.locator('#step-0-to').fill('+15550001111');
    await f.locator('#step-0-text').fill('Deal {{event.entityId}} deleted');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    await expect(f.locator('#rule-warnings').textContent()).resolves.toMatch(
      /ONCRMDEALDELETE, which is not subscribed \(Subscriptions\); it will not fire/,
    );
    // "Saved" once: the warnings' heading says it, no "Saved." line above it.
    await expect(f.locator('#save-result').textContent()).resolves.toMatch(
      /^Saved, but it may not run as you expect:/,
    );
    // On a subscribed event: no warning.
    await f.locator('#on-ONCRMDEALDELETE').uncheck();
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    await expect(f.locator('#rule-warnings').count()).resolves.toBe(0);
  });

  it('saves an amount as a number, so it equals the "1500.00" Bitrix24 sends, and warns of a word', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#rule-name').fill('Big deal');
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-0').selectOption('OPPORTUNITY');
    // As a Russian admin writes it: a space between thousands, a decimal comma.
    await f.locator('#cond-value-0').fill('1 500,00');
    await f.locator('#add-step').click();
    await f.locator('#step-type-0').selectOption('sms');
    await f.locator('#step-0-to').fill('+15550001111');
    await f.locator('#step-0-text').fill('Deal {{deal.ID}} is big');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    const map = await getRuleMap(h.t.deps.db, h.portal.memberId);
    expect(map!.rules.find((r) => r.name === 'Big deal')!.when).toEqual([
      { field: 'OPPORTUNITY', equals: 1500 },
    ]);
    await expect(f.locator('#rule-warnings').count()).resolves.toBe(0);
    // A word in an amount saves, and the admin is told it never matches.
    await f.locator('#cond-value-0').fill('abc');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    await expect(f.locator('#rule-warnings').textContent()).resolves.toContain(
      'deal.OPPORTUNITY holds a number and never equals "abc"',
    );
    // A list of amounts: split at its commas, not at a decimal one.
    await f.locator('#cond-op-0').selectOption('in');
    await f.locator('#cond-value-0').fill('2 500,00, 3000');
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    const listed = await getRuleMap(h.t.deps.db, h.portal.memberId);
    expect(listed!.rules.find((r) => r.name === 'Big deal')!.when).toEqual([
      { field: 'OPPORTUNITY', in: [2500, 3000] },
    ]);
  });

  it('names the step, the field and the row of each refused row in the list of why not saved', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#rule-name').fill('Clashing body');
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-step').click();
    await f.locator('#step-0-url').fill(`${h.sink.url}/x`);
    await f.locator('#step-0-body-add').click();
    await f.locator('#step-0-body-k-0').fill('a');
    await f.locator('#step-0-body-v-0').fill('1');
    await f.locator('#step-0-body-add').click();
    await f.locator('#step-0-body-k-1').fill('a.b');
    await f.locator('#step-0-body-v-1').fill('2');
    await f.locator('#save-rule').click();
    await f.locator('#rule-errors').waitFor();
    await expect(f.locator('#rule-errors > span').textContent()).resolves.toBe(
      'Not saved: fix the fields marked below first.',
    );
    const items = await f.locator('#rule-errors li strong').allTextContents();
    expect(items).toEqual([
      'Step 1, Body fields (sent as JSON), "a"',
      'Step 1, Body fields (sent as JSON), "a.b"',
    ]);
  });

  it('says where to click when Insert has no field, and inserts after a redraw', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-step').click();
    await f.locator('#step-type-0').selectOption('telegram');
    // Straight to the picker: nothing to insert into yet, and it says so.
    await f.locator('#step-0-pick').selectOption('deal.TITLE');
    await f.locator('#step-0-pick-insert').click();
    await expect(f.locator('#step-0-pick-hint').textContent()).resolves.toMatch(/Click in a field/);
    expect((await ruleJson()).actions).toEqual([{ type: 'telegram', text: '' }]);
    // In the text, then a choice that redraws the form: Insert still goes into the text.
    await f.locator('#step-0-text').fill('Won: ');
    await f.locator('#on-ONCRMDEALADD').check();
    await f.locator('#step-0-pick').selectOption('deal.TITLE');
    await f.locator('#step-0-pick-insert').click();
    expect((await ruleJson()).actions).toEqual([{ type: 'telegram', text: 'Won: {{deal.TITLE}}' }]);
    await expect(f.locator('#step-0-pick-hint').isHidden()).resolves.toBe(true);
  });

  it('inserts into the field last typed in, not into the signing secret passed on the way', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-step').click();
    await f.locator('#step-0-url').fill('https://erp.example/api');
    await f.locator('#step-0-body-add').click();
    await f.locator('#step-0-body-k-0').fill('amount');
    await f.locator('#step-0-body-v-0').focus();
    // On the way to the picker, through the secret (as Tab goes).
    await f.locator('#step-0-secret').focus();
    await f.locator('#step-0-pick').selectOption('deal.OPPORTUNITY');
    await f.locator('#step-0-pick-insert').click();
    const [step] = (await ruleJson()).actions as Array<Record<string, unknown>>;
    expect(step!.body).toEqual({ amount: '{{deal.OPPORTUNITY}}' });
    expect(step!.secret).toBeUndefined();
  });

  it("picks a condition's field and operator by typing their names, as a list does", async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-0').focus();
    await page.keyboard.type('Deal Stage');
    await expect(f.locator('#cond-field-0').inputValue()).resolves.toBe('STAGE_ID');
    await f.locator('#cond-op-0').focus();
    await page.keyboard.type('becomes');
    await expect(f.locator('#cond-op-0').inputValue()).resolves.toBe('becomes');
    // The value's list follows the field: the deal's stages.
    await f.locator('#cond-value-0').selectOption('WON');
    expect((await ruleJson()).when).toEqual([{ field: 'STAGE_ID', becomes: 'WON' }]);
  });

  it('takes "Saved." away at the next edit', async () => {
    await buildWonDeal('Saved notice');
    const f = frame();
    await expect(f.locator('#rule-saved').isVisible()).resolves.toBe(true);
    await f.locator('#step-1-text').fill('Deal {{deal.ID}} won!');
    await expect(f.locator('#rule-saved').count()).resolves.toBe(0);
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    // An edit of the JSON too.
    const json = await ruleJson();
    await f.locator('#rule-json').fill(JSON.stringify({ ...json, slaSeconds: 120 }));
    await expect(f.locator('#rule-saved').count()).resolves.toBe(0);
  });

  it('refuses to save while the JSON box holds invalid JSON, and keeps what was typed', async () => {
    await buildWonDeal('Half-typed JSON');
    const f = frame();
    const before = JSON.stringify(
      (await getRuleMap(h.t.deps.db, h.portal.memberId))!.rules.find(
        (r) => r.name === 'Half-typed JSON',
      ),
    );
    const json = await ruleJson();
    // An SLA added and a trailing comma left: not JSON yet, so the form keeps the last rule.
    const typed = JSON.stringify({ ...json, slaSeconds: 300 }, null, 2).replace(/\n}$/, ',\n}');
    await f.locator('#rule-json').fill(typed);
    await f.locator('#json-error').waitFor();
    await f.locator('#save-rule').click();
    await f.locator('#rule-errors').waitFor();
    await expect(f.locator('#rule-errors').textContent()).resolves.toMatch(
      /^Not saved: the JSON of the rule is not valid\./,
    );
    await expect(f.locator('#rule-saved').count()).resolves.toBe(0);
    await expect(f.locator('#rule-json').inputValue()).resolves.toBe(typed);
    await expect(appFrame().evaluate<string>('document.activeElement.id')).resolves.toBe(
      'rule-json',
    );
    // Nothing was sent: the stored rule is as it was.
    const after = (await getRuleMap(h.t.deps.db, h.portal.memberId))!.rules.find(
      (r) => r.name === 'Half-typed JSON',
    );
    expect(JSON.stringify(after)).toBe(before);
    // Control: once the JSON is valid again, the same button saves it.
    await f.locator('#rule-json').fill(typed.replace(/,\n}$/, '\n}'));
    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    const saved = (await getRuleMap(h.t.deps.db, h.portal.memberId))!.rules.find(
      (r) => r.name === 'Half-typed JSON',
    );
    expect(saved?.slaSeconds).toBe(300);
  });

  it('says a rule too large to send is too large, in words, and keeps what was typed', async () => {
    await openBuilder('/ui/rules/new');
    const f = frame();
    await f.locator('#rule-name').fill('Long SMS');
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-step').click();
    await f.locator('#step-type-0').selectOption('sms');
    await f.locator('#step-0-to').fill('+15550001111');
    // Over the form's 1 MB: refused before the map's own 256 KB check could name its size.
    const text = 'x'.repeat(1_100_000);
    await f.locator('#step-0-text').fill(text);
    await f.locator('#save-rule').click();
    await f.locator('#rule-errors').waitFor();
    await expect(f.locator('#rule-errors').textContent()).resolves.toBe(
      'Not saved: the rule is too large to send (over 1 MB): shorten its texts; a portal keeps at most 256 KB of rules.',
    );
    await expect(f.locator('#step-0-text').inputValue()).resolves.toHaveLength(text.length);
  });

  it('names every Remove button after what it removes', async () => {
    await buildWonDeal('Remove names');
    const f = frame();
    const names = await f
      .locator('button', { hasText: 'Remove' })
      .evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label') ?? b.textContent));
    expect(names).toEqual([
      'Remove condition 1',
      'Remove row 1 of Headers, step 1',
      'Remove row 1 of Body fields (sent as JSON), step 1',
      'Remove step 1',
      'Remove step 2',
    ]);
    // "Add field" says where it adds; the rows are a group named by its legend, not a label
    // (whose words, clicked, added an empty row and named the first control after the list).
    const adds = await f
      .locator('button', { hasText: 'Add field' })
      .evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label')));
    expect(adds).toEqual([
      'Add field to Headers, step 1',
      'Add field to Body fields (sent as JSON), step 1',
    ]);
    await expect(f.locator('label:has(#step-0-headers-add)').count()).resolves.toBe(0);
    await expect(
      f.locator('fieldset.kv-set:has(#step-0-headers-add) > legend').textContent(),
    ).resolves.toBe('Headers');
  });

  it('says why a save is refused when the session has ended, and how to keep the edits', async () => {
    await buildWonDeal('Session');
    const f = frame();
    await f.locator('#step-1-text').fill('Edited after lunch');
    await h.t.deps.db('sessions').del();
    entered = false;
    await f.locator('#save-rule').click();
    await f.locator('#rule-errors').waitFor();
    await expect(f.locator('#rule-errors').textContent()).resolves.toMatch(
      /Not saved: Open this application from Bitrix24\./,
    );
    await expect(f.locator('#session-ended').textContent()).resolves.toMatch(
      /copy the rule's JSON/,
    );
    expect(JSON.stringify(await ruleJson())).toContain('Edited after lunch');
  });

  it('says a save refused for withdrawn admin rights, what to do, and keeps the edits', async () => {
    await buildWonDeal('Demoted');
    const f = frame();
    await f.locator('#step-1-text').fill('Typed before the rights went');
    // The portal owner takes the rights away; the app asks again after 5 minutes.
    h.portal.setUserAdmin(1, false);
    h.t.clock.advance(5 * 60_000);
    entered = false;
    try {
      await f.locator('#save-rule').click();
      await f.locator('#rule-errors').waitFor();
      const said = await f.locator('#rule-errors').textContent();
      expect(said).toMatch(/Not saved: Bitrix24 does not confirm that you are an administrator/);
      expect(said).toMatch(/Reopen the application from Bitrix24/);
      await expect(f.locator('#session-ended').textContent()).resolves.toMatch(
        /copy the rule's JSON/,
      );
      expect(JSON.stringify(await ruleJson())).toContain('Typed before the rights went');
      await expect(f.locator('#step-1-text').inputValue()).resolves.toBe(
        'Typed before the rights went',
      );
    } finally {
      h.portal.setUserAdmin(1, true);
    }
  });

  it('keeps the rows being typed in a step when another step is removed or put back', async () => {
    await buildWonDeal('Rows kept');
    const f = frame();
    await f.locator('#step-type-1').selectOption('http');
    await f.locator('#step-1-url').fill(`${h.sink.url}/second`);
    // Step 2: a header typed twice (refused) and an empty row just added.
    await f.locator('#step-1-headers-add').click();
    await f.locator('#step-1-headers-k-0').fill('X-Key');
    await f.locator('#step-1-headers-v-0').fill('one');
    await f.locator('#step-1-headers-add').click();
    await f.locator('#step-1-headers-k-1').fill('X-Key');
    await f.locator('#step-1-headers-v-1').fill('two');
    await f.locator('#step-1-headers-add').click();
    const rows = async (i: number) =>
      f
        .locator(`#step-${i}-headers .row input`)
        .evaluateAll((els) => els.map((e) => (e as unknown as { value: string }).value));
    await f.locator('#step-remove-0').click();
    await expect(rows(0)).resolves.toEqual(['X-Key', 'one', 'X-Key', 'two', '', '']);
    await expect(f.locator('#step-0-headers-k-1').getAttribute('aria-invalid')).resolves.toBe(
      'true',
    );
    await f.locator('#undo-remove').click();
    await expect(rows(1)).resolves.toEqual(['X-Key', 'one', 'X-Key', 'two', '', '']);
  });
});
