import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { chromium, type Browser, type Frame, type Page, type Request } from 'playwright-core';
import { getRuleMap, saveRuleMap } from '../../server/rules/map-store.js';
import { describeInChromium } from '../helpers/browser-suite.js';
import { appFrameOf } from '../helpers/framed-ui.js';
import { BROWSER_STEP_TIMEOUT_MS, CHROMIUM_ARGS } from '../helpers/chromium.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { paidDealMap } from '../helpers/scenario.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';

const PAID = 'Paid deal: invoice, shipment, SMS';

/**
 * The rule builder in headless Chromium inside the emulated portal: an admin builds the
 * demo's "Paid deal" rule with clicks and typing into form fields only (no JSON), saves it,
 * and a deal moved to the paid stage runs it. A non-admin sees it read-only.
 */
describeInChromium('the rule builder inside the Bitrix24 frame', (executablePath) => {
  let h: UiHarness;
  let sms: HttpSink;
  let browser: Browser;
  let page: Page;
  let dealId = '';

  beforeAll(async () => {
    sms = await startHttpSink(() => ({ status: 200, body: { queued: true } }));
    h = await startUiHarness({
      appHost: 'localhost',
      env: { SMS_PROVIDER: 'generic', SMS_URL: `${sms.url}/send`, SMS_TOKEN: 'sms-token-1234' },
    });
    // The portal's own map starts empty, so the saved map is exactly the built rule.
    await saveRuleMap(h.t.deps.db, h.portal.memberId, { rules: [] }, h.t.clock.now());
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
    page = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
    page.setDefaultTimeout(BROWSER_STEP_TIMEOUT_MS);
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await sms?.close();
  });

  const frame = () => page.frameLocator('iframe.b24emu-frame');
  const appFrame = (): Frame => appFrameOf(page, h.appUrl);
  async function openBuilder(user: number, path: string) {
    await page.goto(`${h.portal.url}/app?user=${user}`);
    await frame().locator('#figures').waitFor();
    await Promise.all([
      appFrame().waitForNavigation(),
      appFrame().evaluate(`location.href = ${JSON.stringify(path)}`),
    ]);
    await frame().locator('html[data-builder-ready="1"]').waitFor();
  }
  /** Puts the caret in `field`, picks `path` in the step's template picker and inserts it. */
  async function insert(step: number, field: string, path: string, sub = '') {
    await frame().locator(field).click();
    await frame().locator(`#step-${step}-pick`).selectOption(path);
    if (sub) await frame().locator(`#step-${step}-pick-sub`).fill(sub);
    await frame().locator(`#step-${step}-pick-insert`).click();
  }
  async function bodyField(step: number, key: string, row: number, name: string) {
    await frame().locator(`#step-${step}-${key}-add`).click();
    await frame().locator(`#step-${step}-${key}-k-${row}`).fill(name);
  }

  it('an admin builds the Paid deal rule with clicks only, saves it, and it runs', async () => {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#rule-name').fill(PAID);
    // A condition before any event: no record yet, so no list of fields; the form says why
    // (a bare text box said nothing), and the list comes with the event.
    await f.locator('#add-condition').click();
    await expect(f.locator('#cond-field-0-hint').textContent()).resolves.toContain(
      'Tick the event first',
    );
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await expect(f.locator('#cond-field-0-hint').count()).resolves.toBe(0);
    // "Try it" takes the event ticked (it stayed empty on a new rule: typed by hand).
    await expect(f.locator('#try-event').inputValue()).resolves.toBe('ONCRMDEALUPDATE');
    await expect(f.locator('#cond-field-0').evaluate((e) => e.tagName)).resolves.toBe('SELECT');
    // The condition: Deal Stage becomes "Deal successful" (General pipeline), from the pickers.
    await f.locator('#cond-field-0').selectOption('STAGE_ID');
    await f.locator('#cond-op-0').selectOption('becomes');
    const stageLabels = await f
      .locator('#cond-value-0 optgroup')
      .evaluateAll((gs) => gs.map((g) => g.getAttribute('label')));
    expect(stageLabels).toEqual(['Pipeline: General', 'Pipeline: Wholesale']);
    await f.locator('#cond-value-0').selectOption('WON');
    // A stage is one pipeline's, and this portal has two: the form says so, and what to use.
    await expect(f.locator('#cond-0-pipeline').textContent()).resolves.toBe(
      'Only deals in the pipeline "General": each pipeline has stages of its own. For any pipeline, use "Stage group" (Successful for a won deal).',
    );

    // 1. the invoice
    await f.locator('#add-step').click();
    await f.locator('#step-name-0').fill('invoice');
    await f.locator('#step-0-url').fill(`${h.sink.url}/api/invoices`);
    await bodyField(0, 'body', 0, 'dealId');
    await insert(0, '#step-0-body-v-0', 'deal.ID');
    await bodyField(0, 'body', 1, 'amount');
    await insert(0, '#step-0-body-v-1', 'deal.OPPORTUNITY');
    // 2. the shipment
    await f.locator('#add-step').click();
    await f.locator('#step-name-1').fill('shipment');
    await f.locator('#step-1-url').fill(`${h.sink.url}/api/shipments`);
    await bodyField(1, 'body', 0, 'dealId');
    await insert(1, '#step-1-body-v-0', 'deal.ID');
    // 3. the SMS
    await f.locator('#add-step').click();
    await f.locator('#step-type-2').selectOption('sms');
    await f.locator('#step-name-2').fill('sms');
    await insert(2, '#step-2-to', 'contact.PHONE');
    await f.locator('#step-2-text').fill('Payment received for order ');
    await insert(2, '#step-2-text', 'deal.ID');
    // 4. the timeline comment, reading the invoice step's answer: a step of its own, on the
    // event's deal unless another record is picked; no REST method or parameter to type.
    await f.locator('#add-step').click();
    await f.locator('#step-type-3').selectOption('comment');
    await f.locator('#step-name-3').fill('comment');
    await expect(f.locator('#step-3 > legend').textContent()).resolves.toBe('4. Timeline comment');
    await expect(
      f.locator('#step-3-comment-on option').evaluateAll((os) => os.map((o) => o.textContent)),
    ).resolves.toEqual([
      "Deal (the event's record)",
      "Contact (linked to the event's record)",
      "Company (linked to the event's record)",
    ]);
    await expect(f.locator('#step-3-comment-on option:checked').textContent()).resolves.toBe(
      "Deal (the event's record)",
    );
    // A few lines in the page's font, not the JSON editor's 360 px of monospace.
    const box = await f.locator('#step-3-comment').boundingBox();
    expect(box!.height).toBeLessThan(120);
    await expect(
      f
        .locator('#step-3-comment')
        .evaluate((el) => el.ownerDocument.defaultView!.getComputedStyle(el).fontFamily),
    ).resolves.not.toMatch(/monospace/);
    await expect(f.locator('#step-3-comment-on option[translate="no"]').count()).resolves.toBe(0);
    await f.locator('#step-3-comment').fill('Invoice ');
    await insert(3, '#step-3-comment', 'steps.invoice.response', 'id');
    await f.locator('#step-3-comment').press('End');
    await f.locator('#step-3-comment').pressSequentially(' created');
    await f.locator('#rule-sla').fill('60');

    const expected = paidDealMap({ accounting: h.sink.url, logistics: h.sink.url });
    // The JSON side followed the form.
    const shown = JSON.parse(await f.locator('#rule-json').inputValue()) as unknown;
    expect(shown).toEqual(expected.rules[0]);

    await f.locator('#save-rule').click();
    await f.locator('#rule-saved').waitFor();
    expect(await getRuleMap(h.t.deps.db, h.portal.memberId)).toEqual(expected);

    // A deal moved to the paid stage runs it.
    const contact = await h.portal.addContact({
      NAME: 'Ann',
      PHONE: [{ VALUE: '+15550001111', VALUE_TYPE: 'WORK' }],
    });
    const deal = await h.portal.addDeal({
      TITLE: 'Order 7',
      STAGE_ID: 'NEW',
      OPPORTUNITY: '1500',
      CONTACT_ID: contact.id,
    });
    await h.drain();
    dealId = deal.id;
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
    const at = (p: string) => h.sink.requests.filter((r) => r.url === p);
    expect(at('/api/invoices').map((r) => JSON.parse(r.body))).toEqual([
      { dealId: deal.id, amount: '1500.00' },
    ]);
    expect(at('/api/shipments')).toHaveLength(1);
    expect(sms.requests).toHaveLength(1);
    expect(JSON.parse(sms.requests[0]!.body)).toMatchObject({
      to: '+15550001111',
      text: `Payment received for order ${deal.id}`,
    });
    const comments = h.portal.timeline.filter((c) => c.ENTITY_ID === deal.id);
    expect(comments.map((c) => c.COMMENT)).toEqual(['Invoice INV-1 created']);
  });

  it('edits the saved rule: try it, and the JSON side updates the form', async () => {
    await openBuilder(1, `/ui/rules/edit?name=${encodeURIComponent(PAID)}`);
    const f = frame();
    await expect(f.locator('#step-name-2').inputValue()).resolves.toBe('sms');
    // Sent without a record, a step that reads the deal says so and leads to the Record ID
    // box at the bottom of the form.
    await f.locator('#step-send-0').click();
    await f.locator('#step-to-record-0').waitFor();
    // Read as text (a screen reader, a copy), the sentence and the button are apart.
    await expect(
      f.locator('#step-to-record-0').evaluate((el) => el.parentElement!.textContent),
    ).resolves.toMatch(/with\. \S/);
    await f.locator('#step-to-record-0').click();
    await expect(
      f.locator('#try-id').evaluate((el) => el === el.ownerDocument.activeElement),
    ).resolves.toBe(true);
    await f.locator('#try-id').fill(dealId);
    await f.locator('#dry-run').click();
    await f.locator('#dry-verdict').waitFor();
    // The deal is won already: the rule on "becomes" is shown as matching on that change,
    // with its steps, and with why an event of it now would not match.
    await expect(f.locator('#dry-verdict b').textContent()).resolves.toBe(
      'matches when this change happens',
    );
    await expect(f.locator('#dry-now').textContent()).resolves.toMatch(
      /^An event of this record now: does not match \(Stage was already "Deal successful"\)$/,
    );
    // In the rules page's and the log's words: the field's and the stage's names, not codes.
    await expect(f.locator('#dry-verdict span').textContent()).resolves.toMatch(
      /^Stage is "Deal successful"/,
    );
    await expect(f.locator('#dry-result pre').count()).resolves.toBe(4);
    // Each step under its type's name, as in the form ("1. HTTP request (invoice)").
    await expect(f.locator('#dry-result pre').first().textContent()).resolves.toMatch(
      /^1\. HTTP request \(invoice\)\n/,
    );
    const before = h.sink.requests.length;
    await f.locator('#step-send-1').click();
    await f.locator('#step-sent-1.notice').waitFor();
    expect(h.sink.requests.slice(before).map((r) => [r.url, JSON.parse(r.body)])).toEqual([
      ['/api/shipments', { dealId }],
    ]);
    // It says where it went, and nothing went out unfilled.
    await expect(f.locator('#step-sent-1').textContent()).resolves.toContain(
      `→ POST ${h.sink.url}/api/shipments`,
    );
    await expect(f.locator('#step-unfilled-1').count()).resolves.toBe(0);
    // The comment reads the invoice step's answer, which a test does not have: said so.
    await f.locator('#step-send-3').click();
    await f.locator('#step-sent-3.notice').waitFor();
    await expect(f.locator('#step-sent-3').textContent()).resolves.toContain(
      '→ Bitrix24 crm.timeline.comment.add',
    );
    await expect(f.locator('#step-unfilled-3').textContent()).resolves.toBe(
      'Earlier steps do not run in a test, so what reads their answer was sent as written: {{steps.invoice.response.id}}',
    );
    // The page's list of this rule's test sends has it at once, as a reload would show it.
    await expect(f.locator('#test-sends-none').isHidden()).resolves.toBe(true);
    const sent = f.locator('#test-sends tr[data-status]');
    await expect(sent.count()).resolves.toBe(2);
    await expect(sent.locator('td').nth(1).textContent()).resolves.toMatch(/^(2|4)\. /);
    await expect(sent.locator('.badge.b-succeeded').count()).resolves.toBe(2);
    const json = JSON.parse(await f.locator('#rule-json').inputValue()) as { slaSeconds: number };
    json.slaSeconds = 90;
    await f.locator('#rule-json').fill(JSON.stringify(json));
    await expect(f.locator('#rule-sla').inputValue()).resolves.toBe('90');
    // The dry run judged the rule as it was: an edit takes its result away.
    await expect(f.locator('#dry-verdict').count()).resolves.toBe(0);
    // Valid JSON of another shape: the form shows what it can and leaves the text alone.
    const odd =
      '{"name":"odd","on":["ONCRMDEALADD"],"when":[1,{"field":"STAGE_ID","in":"WON"}],"actions":{}}';
    await f.locator('#rule-json').fill(odd);
    await expect(f.locator('#rule-name').inputValue()).resolves.toBe('odd');
    await expect(f.locator('#cond-field-1').inputValue()).resolves.toBe('STAGE_ID');
    await expect(f.locator('#rule-json').inputValue()).resolves.toBe(odd);
    await f.locator('#rule-json').fill(JSON.stringify(json));
    await f.locator('#rule-json').fill('{"name": ');
    await f.locator('#json-error').waitFor();
    await expect(f.locator('#rule-sla').inputValue()).resolves.toBe('90');
  });

  it('shows a saved timeline comment as one, keeps a record given in the JSON, and offers it where a timeline is', async () => {
    await openBuilder(1, `/ui/rules/edit?name=${encodeURIComponent(PAID)}`);
    const f = frame();
    await expect(f.locator('#step-3 > legend').textContent()).resolves.toBe('4. Timeline comment');
    await expect(f.locator('#step-3-comment').inputValue()).resolves.toBe(
      'Invoice {{steps.invoice.response.id}} created',
    );
    type Rule = { actions: { params?: { fields: Record<string, string> } }[] };
    const json = JSON.parse(await f.locator('#rule-json').inputValue()) as Rule;
    // A record the list does not offer, typed in the JSON: shown as typed, and kept.
    json.actions[3]!.params!.fields = {
      ENTITY_TYPE: 'contact',
      ENTITY_ID: '{{deal.CONTACT_ID}}',
      COMMENT: 'Paid',
    };
    await f.locator('#rule-json').fill(JSON.stringify(json));
    await expect(f.locator('#step-3-comment-on option:checked').textContent()).resolves.toBe(
      'as in the JSON: contact {{deal.CONTACT_ID}}',
    );
    await f.locator('#step-3-comment').fill('Paid in full');
    const kept = JSON.parse(await f.locator('#rule-json').inputValue()) as Rule;
    expect(kept.actions[3]!.params!.fields).toEqual({
      ENTITY_TYPE: 'contact',
      ENTITY_ID: '{{deal.CONTACT_ID}}',
      COMMENT: 'Paid in full',
    });
    // Picked from the list: the company read with the deal.
    await f
      .locator('#step-3-comment-on')
      .selectOption({ label: "Company (linked to the event's record)" });
    const picked = JSON.parse(await f.locator('#rule-json').inputValue()) as Rule;
    expect(picked.actions[3]!.params!.fields).toEqual({
      ENTITY_TYPE: 'company',
      ENTITY_ID: '{{company.ID}}',
      COMMENT: 'Paid in full',
    });
    // The record as typed, picked again: back in the JSON (found in review).
    await f.locator('#step-3-comment-on').selectOption({ index: 0 });
    const back = JSON.parse(await f.locator('#rule-json').inputValue()) as Rule;
    expect(back.actions[3]!.params!.fields).toMatchObject({
      ENTITY_TYPE: 'contact',
      ENTITY_ID: '{{deal.CONTACT_ID}}',
    });
    await f
      .locator('#step-3-comment-on')
      .selectOption({ label: "Company (linked to the event's record)" });
    // The method's name in capitals reads as a comment too, as on the rules page.
    const upper = JSON.parse(await f.locator('#rule-json').inputValue()) as Rule & {
      actions: { method?: string }[];
    };
    upper.actions[3]!.method = 'CRM.TIMELINE.COMMENT.ADD';
    await f.locator('#rule-json').fill(JSON.stringify(upper));
    await expect(f.locator('#step-3 > legend').textContent()).resolves.toBe('4. Timeline comment');
    // A comment with more than a record and a text is the REST call it is.
    picked.actions[3]!.params!.fields.AUTHOR_ID = '1';
    await f.locator('#rule-json').fill(JSON.stringify(picked));
    await expect(f.locator('#step-3 > legend').textContent()).resolves.toBe('4. Bitrix24 method');
    await expect(f.locator('#step-3-method').inputValue()).resolves.toBe(
      'crm.timeline.comment.add',
    );
    // The type list offers the comment only where the trigger has a record with a timeline.
    await openBuilder(1, '/ui/rules/new');
    await f.locator('#on-ONCRMACTIVITYADD').check();
    await f.locator('#add-step').click();
    await expect(f.locator('#step-type-0 option[value="comment"]').count()).resolves.toBe(0);
    await f.locator('#on-ONCRMACTIVITYADD').uncheck();
    await f.locator('#on-ONCRMLEADUPDATE').check();
    await expect(f.locator('#step-type-0 option[value="comment"]').count()).resolves.toBe(1);
    // Nor on a deletion: the record has no timeline any more (found in review).
    await f.locator('#on-ONCRMLEADUPDATE').uncheck();
    await f.locator('#on-ONCRMDEALDELETE').check();
    await expect(f.locator('#step-type-0 option[value="comment"]').count()).resolves.toBe(0);
  });

  it('says as a step type is picked that this server cannot send it', async () => {
    // This server has SMS set up, no Telegram bot and no SMTP.
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    // A trigger is what it means first, its code after (as the log and the rules page say it).
    await expect(f.locator('label:has(#on-ONCRMDEALUPDATE)').textContent()).resolves.toMatch(
      /^A deal was changed ONCRMDEALUPDATE \((not )?subscribed\)$/,
    );
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-step').click();
    await expect(
      f.locator('#step-type-0 option').evaluateAll((os) => os.map((o) => o.textContent)),
    ).resolves.toEqual([
      'HTTP request',
      'Telegram (not set up)',
      'E-mail (not set up)',
      'SMS',
      'Bitrix24 method',
      'Timeline comment',
    ]);
    // The picker names the event's own values, their path after (not a bare event.name).
    await expect(f.locator('#step-0-pick option[value="event.name"]').textContent()).resolves.toBe(
      'Event code — event.name',
    );
    await expect(f.locator('#step-0-unset').count()).resolves.toBe(0);
    await f.locator('#step-type-0').selectOption('telegram');
    await expect(f.locator('#step-0-unset').textContent()).resolves.toBe(
      "No Telegram bot is set up on this server (TELEGRAM_BOT_TOKEN): this step would fail every time. Ask the app's operator to set one up.",
    );
    await f.locator('#step-type-0').selectOption('sms');
    await expect(f.locator('#step-0-unset').count()).resolves.toBe(0);
  });

  it('builds a rule on a deal won in any pipeline with the stage group, and it runs', async () => {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#rule-name').fill('Won anywhere');
    await f.locator('#on-ONCRMDEALUPDATE').check();
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-0').selectOption('STAGE_SEMANTIC_ID');
    await f.locator('#cond-op-0').selectOption('becomes');
    await expect(
      f
        .locator('#cond-value-0 option')
        .evaluateAll((os) => os.filter((o) => o.value).map((o) => [o.value, o.textContent])),
    ).resolves.toEqual([
      ['P', 'In progress'],
      ['S', 'Successful'],
      ['F', 'Failed'],
    ]);
    await f.locator('#cond-value-0').selectOption('S');
    await expect(f.locator('#cond-0-pipeline').count()).resolves.toBe(0);
    await f.locator('#add-step').click();
    await f.locator('#step-0-url').fill(`${h.sink.url}/api/won-anywhere`);
    // A double click saves once: the second click sent the rule again, which was refused
    // ("a rule named … already exists") and said "Not saved" over the saved rule.
    const saves: string[] = [];
    const count = (r: Request) => {
      if (r.method() === 'POST' && r.url().includes('/ui/rules/builder/save')) saves.push(r.url());
    };
    page.on('request', count);
    await f.locator('#save-rule').dblclick();
    await f.locator('#rule-saved, #rule-errors').first().waitFor();
    page.off('request', count);
    expect(saves).toHaveLength(1);
    expect(await f.locator('#rule-errors').allTextContents()).toEqual([]);
    // A deal of the Wholesale pipeline won: the rule runs.
    const deal = await h.portal.addDeal({ TITLE: 'Bulk', CATEGORY_ID: '1', STAGE_ID: 'C1:NEW' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'C1:WON' });
    await h.drain();
    expect(h.sink.requests.filter((r) => r.url === '/api/won-anywhere')).toHaveLength(1);
    // The rules page says it in words.
    await f.locator('#nav-rules').click();
    await f.locator('#rules-map').waitFor();
    await expect(
      f.locator('#rules-map tr[data-rule="Won anywhere"] td.when').textContent(),
    ).resolves.toContain('Stage group becomes Successful');
  });

  it("offers a smart process's own fields once its event is the trigger", async () => {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#on-other').fill('ONCRMDYNAMICITEMUPDATE_128');
    await f.locator('#on-add').click();
    await f.locator('#add-condition').click();
    await f
      .locator('#cond-field-0 option[value="ufCrm128_1747309727"]')
      .waitFor({ state: 'attached' });
    await f.locator('#cond-field-0').selectOption('ufCrm128_1747309727');
    await f.locator('#cond-value-0').selectOption('61');
    // Its stage, picked from the list of its own pipelines' stages.
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-1').selectOption('stageId');
    await f.locator('#cond-op-1').selectOption('becomes');
    const groups = await f
      .locator('#cond-value-1 optgroup')
      .evaluateAll((gs) =>
        gs.map((g) => [
          g.getAttribute('label'),
          [...g.querySelectorAll('option')].map((o) => o.textContent),
        ]),
      );
    expect(groups).toEqual([
      ['Pipeline: General', ['Start', 'Preparation', 'Success', 'Failure']],
      ['Pipeline: Partners', ['Start', 'Negotiation', 'Success', 'Failure']],
    ]);
    await f.locator('#cond-value-1').selectOption('DT128_1281:SUCCESS');
    // Its pipeline field lists its own pipelines, not the deals'.
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-2').selectOption('categoryId');
    const pipelines = await f
      .locator('#cond-value-2 option')
      .evaluateAll((os) => os.map((o) => [o.getAttribute('value'), o.textContent]));
    expect(pipelines.slice(1)).toEqual([
      ['1280', 'General'],
      ['1281', 'Partners'],
    ]);
    await f.locator('#cond-remove-2').click();
    const rule = JSON.parse(await f.locator('#rule-json').inputValue()) as Record<string, unknown>;
    expect(rule).toMatchObject({
      on: ['ONCRMDYNAMICITEMUPDATE_128'],
      when: [
        { field: 'ufCrm128_1747309727', equals: '61' },
        { field: 'stageId', becomes: 'DT128_1281:SUCCESS' },
      ],
    });
  });

  it("offers a lead's own fields and its stages by name once a lead event is the trigger", async () => {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#on-ONCRMLEADUPDATE').check();
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-0 option[value="STATUS_ID"]').waitFor({ state: 'attached' });
    await expect(
      f.locator('#cond-field-0 option[value="STATUS_ID"]').textContent(),
    ).resolves.toContain('Stage');
    await f.locator('#cond-field-0').selectOption('STATUS_ID');
    await f.locator('#cond-op-0').selectOption('becomes');
    const stages = await f
      .locator('#cond-value-0 option')
      .evaluateAll((os) => os.map((o) => [o.getAttribute('value'), o.textContent]));
    expect(stages.filter(([v]) => v)).toEqual([
      ['NEW', 'Unassigned'],
      ['IN_PROCESS', 'In progress'],
      ['PROCESSED', 'Processed'],
      ['CONVERTED', 'Good lead'],
      ['JUNK', 'Junk lead'],
    ]);
    await f.locator('#cond-value-0').selectOption('CONVERTED');
    const rule = JSON.parse(await f.locator('#rule-json').inputValue()) as Record<string, unknown>;
    expect(rule).toMatchObject({
      on: ['ONCRMLEADUPDATE'],
      when: [{ field: 'STATUS_ID', becomes: 'CONVERTED' }],
    });
  });

  it("offers an activity's fields in the condition and the template picker once an activity event is the trigger", async () => {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#on-ONCRMACTIVITYADD').check();
    await f.locator('#add-condition').click();
    const option = f.locator('#cond-field-0 option[value="PROVIDER_TYPE_ID"]');
    await option.waitFor({ state: 'attached' });
    await expect(option.textContent()).resolves.toContain('Provider Type');
    await f.locator('#cond-field-0').selectOption('PROVIDER_TYPE_ID');
    await f.locator('#cond-value-0').fill('CALL');
    // The type is picked by name.
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-1 option[value="TYPE_ID"]').waitFor({ state: 'attached' });
    await f.locator('#cond-field-1').selectOption('TYPE_ID');
    await expect(f.locator('#cond-value-1 option[value="2"]').textContent()).resolves.toBe('Call');
    await f.locator('#cond-value-1').selectOption('2');
    await f.locator('#add-step').click();
    await f.locator('#step-0-url').fill(`${h.sink.url}/api/calls`);
    await bodyField(0, 'body', 0, 'subject');
    await insert(0, '#step-0-body-v-0', 'activity.SUBJECT');
    // The picker offers the activity's own fields, and no deal, contact or company.
    const groups = await f
      .locator('#step-0-pick optgroup')
      .evaluateAll((gs) => gs.map((g) => g.getAttribute('label')));
    expect(groups).toContain('Activity');
    expect(groups).not.toContain('Deal');
    const rule = JSON.parse(await f.locator('#rule-json').inputValue()) as Record<string, unknown>;
    expect(rule).toMatchObject({
      on: ['ONCRMACTIVITYADD'],
      when: [
        { field: 'PROVIDER_TYPE_ID', equals: 'CALL' },
        { field: 'TYPE_ID', equals: '2' },
      ],
      actions: [{ body: { subject: '{{activity.SUBJECT}}' } }],
    });
  });

  it("offers a quote's fields in the condition and the template picker once a quote event is the trigger", async () => {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#on-other').fill('ONCRMQUOTEUPDATE');
    await f.locator('#on-add').click();
    await f.locator('#add-condition').click();
    const option = f.locator('#cond-field-0 option[value="CLOSED"]');
    await option.waitFor({ state: 'attached' });
    await expect(option.textContent()).resolves.toContain('Closed');
    // A flag is picked as Yes / No.
    await f.locator('#cond-field-0').selectOption('CLOSED');
    await f.locator('#cond-value-0').selectOption('Y');
    await f.locator('#add-step').click();
    await f.locator('#step-0-url').fill(`${h.sink.url}/api/quotes`);
    await bodyField(0, 'body', 0, 'title');
    await insert(0, '#step-0-body-v-0', 'quote.TITLE');
    // The picker offers the quote's fields, and its contact's and company's (read with it).
    const groups = await f
      .locator('#step-0-pick optgroup')
      .evaluateAll((gs) => gs.map((g) => g.getAttribute('label')));
    expect(groups).toEqual(expect.arrayContaining(['Quote', 'Contact', 'Company']));
    expect(groups).not.toContain('Deal');
    const rule = JSON.parse(await f.locator('#rule-json').inputValue()) as Record<string, unknown>;
    expect(rule).toMatchObject({
      on: ['ONCRMQUOTEUPDATE'],
      when: [{ field: 'CLOSED', equals: 'Y' }],
      actions: [{ body: { title: '{{quote.TITLE}}' } }],
    });
  });

  it("offers an old invoice's fields once ONCRMINVOICESETSTATUS is the trigger", async () => {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#on-other').fill('ONCRMINVOICESETSTATUS');
    await f.locator('#on-add').click();
    await f.locator('#add-condition').click();
    const option = f.locator('#cond-field-0 option[value="STATUS_ID"]');
    await option.waitFor({ state: 'attached' });
    await f.locator('#cond-field-0').selectOption('STATUS_ID');
    await f.locator('#cond-value-0').selectOption('P');
    await f.locator('#add-step').click();
    await f.locator('#step-0-url').fill(`${h.sink.url}/api/invoices`);
    await bodyField(0, 'body', 0, 'topic');
    await insert(0, '#step-0-body-v-0', 'invoice.ORDER_TOPIC');
    const groups = await f
      .locator('#step-0-pick optgroup')
      .evaluateAll((gs) => gs.map((g) => g.getAttribute('label')));
    expect(groups).toContain('Invoice');
    const rule = JSON.parse(await f.locator('#rule-json').inputValue()) as Record<string, unknown>;
    expect(rule).toMatchObject({
      on: ['ONCRMINVOICESETSTATUS'],
      when: [{ field: 'STATUS_ID', equals: 'P' }],
      actions: [{ body: { topic: '{{invoice.ORDER_TOPIC}}' } }],
    });
  });

  /** The options of condition `i`'s value list, as `[value, text]`, "— choose —" aside. */
  const valueOptions = (i: number) =>
    frame()
      .locator(`#cond-value-${i} option`)
      .evaluateAll((os) =>
        os.map((o) => [o.getAttribute('value'), o.textContent]).filter(([v]) => v !== ''),
      );

  /**
   * A new rule on `event` whose first condition is on STATUS_ID with operator `op`: checks the
   * value list holds `statuses` and picks `value` from it.
   */
  async function statusCondition(
    event: string,
    op: string,
    statuses: string[][],
    value: string | string[],
  ) {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#on-other').fill(event);
    await f.locator('#on-add').click();
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-0 option[value="STATUS_ID"]').waitFor({ state: 'attached' });
    await f.locator('#cond-field-0').selectOption('STATUS_ID');
    await f.locator('#cond-op-0').selectOption(op);
    await expect(valueOptions(0)).resolves.toEqual(statuses);
    await f.locator('#cond-value-0').selectOption(value);
    return f;
  }

  /** The emulated portal's users (test/emulator/portal.ts), as the user pickers offer them. */
  const USERS = [
    ['1', 'Admin'],
    ['2', 'Manager'],
  ];
  /** Adds condition `i` on `field`, checks its value list and picks `value` from it. */
  async function pickFrom(i: number, field: string, options: string[][], value: string) {
    const f = frame();
    await f.locator('#add-condition').click();
    await f.locator(`#cond-field-${i}`).selectOption(field);
    await expect(valueOptions(i)).resolves.toEqual(options);
    await f.locator(`#cond-value-${i}`).selectOption(value);
  }

  it("offers a quote's statuses by the portal's names, and its responsible person by name", async () => {
    // The portal's list QUOTE_STATUS, in its order, read with the rest of the metadata.
    const quoteStatuses = [
      ['DRAFT', 'Draft'],
      ['SENT', 'Sent'],
      ['APPROVED', 'Approved'],
      ['DECLAINED', 'Declined'],
      ['APOLOGY', 'Failure analysis'],
    ];
    const f = await statusCondition('ONCRMQUOTEUPDATE', 'in', quoteStatuses, ['APPROVED', 'SENT']);
    await pickFrom(1, 'ASSIGNED_BY_ID', USERS, '2');
    const rule = JSON.parse(await f.locator('#rule-json').inputValue()) as Record<string, unknown>;
    expect(rule.when).toEqual([
      { field: 'STATUS_ID', in: ['SENT', 'APPROVED'] },
      { field: 'ASSIGNED_BY_ID', equals: '2' },
    ]);
  });

  it("offers an old invoice's statuses, Paid as Yes / No and the responsible person by name", async () => {
    // The portal's list INVOICE_STATUS: crm.invoice.fields calls STATUS_ID a string.
    const invoiceStatuses = [
      ['N', 'New'],
      ['S', 'Sent'],
      ['P', 'Paid'],
      ['D', 'Declined'],
    ];
    const f = await statusCondition('ONCRMINVOICEUPDATE', 'becomes', invoiceStatuses, 'P');
    await pickFrom(
      1,
      'PAYED',
      [
        ['Y', 'Yes'],
        ['N', 'No'],
      ],
      'Y',
    );
    await pickFrom(2, 'RESPONSIBLE_ID', USERS, '1');
    const rule = JSON.parse(await f.locator('#rule-json').inputValue()) as Record<string, unknown>;
    expect(rule.when).toEqual([
      { field: 'STATUS_ID', becomes: 'P' },
      { field: 'PAYED', equals: 'Y' },
      { field: 'RESPONSIBLE_ID', equals: '1' },
    ]);
  });

  it('offers no deal fields for a user field event, which is about a field (found in review)', async () => {
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#on-other').fill('ONCRMDEALUSERFIELDADD');
    await f.locator('#on-add').click();
    await f.locator('#add-step').click();
    await f.locator('#step-0-url').fill(`${h.sink.url}/api/fields`);
    await bodyField(0, 'body', 0, 'field');
    const groups = () =>
      f
        .locator('#step-0-pick optgroup')
        .evaluateAll((gs) => gs.map((g) => g.getAttribute('label')));
    await f.locator('#step-0-pick optgroup').first().waitFor({ state: 'attached' });
    // The event's own fields are offered (the control: the picker is drawn), a deal's are not.
    expect(await groups()).toContain('Event');
    expect(await groups()).not.toContain('Deal');
  });

  it("keeps a text box with a hint when a smart process's stages cannot be read", async () => {
    // Both pipelines' stage lists of smart process 131 fail (its own cache entry).
    h.portal.failNext('crm.status.list', { status: 403, error: 'ACCESS_DENIED' }, 2);
    await openBuilder(1, '/ui/rules/new');
    const f = frame();
    await f.locator('#on-other').fill('ONCRMDYNAMICITEMUPDATE_131');
    await f.locator('#on-add').click();
    await f.locator('#add-condition').click();
    await f.locator('#cond-field-0 option[value="stageId"]').waitFor({ state: 'attached' });
    await f.locator('#cond-field-0').selectOption('stageId');
    await f.locator('#cond-value-0-hint').waitFor();
    await expect(f.locator('#cond-value-0').evaluate((e) => e.tagName)).resolves.toBe('INPUT');
    await f.locator('#cond-value-0').fill('DT131_1310:NEW');
    const rule = JSON.parse(await f.locator('#rule-json').inputValue()) as Record<string, unknown>;
    expect(rule).toMatchObject({ when: [{ field: 'stageId', equals: 'DT131_1310:NEW' }] });
  });

  it('shows a non-admin the rule read-only: no save, no send, fields disabled', async () => {
    await openBuilder(2, `/ui/rules/edit?name=${encodeURIComponent(PAID)}`);
    const f = frame();
    await f.locator('#builder-readonly').waitFor();
    await expect(f.locator('#rule-name').inputValue()).resolves.toBe(PAID);
    await expect(f.locator('#rule-name').isDisabled()).resolves.toBe(true);
    await expect(f.locator('#cond-value-0').isDisabled()).resolves.toBe(true);
    for (const id of ['#save-rule', '#step-send-0', '#dry-run', '#add-step', '#reveal']) {
      await expect(f.locator(id).count()).resolves.toBe(0);
    }
  });
});
