import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { getRuleMap } from '../../server/rules/map-store.js';
import { projectRoot } from '../../server/lib/project-root.js';
import { describeInChromium } from '../helpers/browser-suite.js';
import { startFramedUi, type FramedUi } from '../helpers/framed-ui.js';
import type { UiHarness } from '../helpers/ui-harness.js';

const ARTIFACTS = path.join(projectRoot(), 'test-artifacts', 'ui');

/** The map page inside the emulated portal: an admin turns a rule off, moves one, deletes one. */
describeInChromium('the map page in the Bitrix24 frame', (executablePath) => {
  let ui: FramedUi | undefined;
  let h: UiHarness;
  let page: Page;

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    ui = await startFramedUi(executablePath);
    ({ h, page } = ui);
  });
  afterAll(async () => {
    await ui?.close();
  });

  const frame = () => page.frameLocator('iframe.b24emu-frame');
  const row = (name: string) => frame().locator(`#rules-map tr[data-rule="${name}"]`).first();
  const shot = (name: string) =>
    page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const tableOrder = () =>
    frame()
      .locator('#rules-map tbody tr[id^="rule-"]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-rule')));
  const storedOrder = async () =>
    (await getRuleMap(h.t.deps.db, h.portal.memberId))?.rules.map((r) => [
      r.name,
      r.enabled !== false,
    ]);

  it('shows every rule in words, with its last 7 days', async () => {
    await page.goto(`${h.portal.url}/app?user=1`);
    await frame().locator('#figures').waitFor();
    await frame().locator('#nav-rules').click();
    await frame().locator('#rules-map').waitFor();
    await expect(tableOrder()).resolves.toEqual(['Won deal: invoice', 'Lost deal: notify']);
    await expect(row('Won deal: invoice').textContent()).resolves.toContain(
      'Stage becomes Deal successful (pipeline General)',
    );
    await expect(row('Won deal: invoice').locator('.runs').textContent()).resolves.toContain(
      '1 of 1',
    );
    // The JSON editor is there, folded.
    await expect(frame().locator('#map').isVisible()).resolves.toBe(false);
    await shot('11-rules-map');
  });

  it('turns a rule off with a click', async () => {
    await row('Lost deal: notify').locator('button.toggle').click();
    await frame().locator('#map-changed').waitFor();
    await expect(row('Lost deal: notify').getAttribute('data-enabled')).resolves.toBe('false');
    await expect(row('Lost deal: notify').locator('button.toggle').textContent()).resolves.toBe(
      'Enable',
    );
    expect(await storedOrder()).toEqual([
      ['Won deal: invoice', true],
      ['Lost deal: notify', false],
    ]);
  });

  it('moves a rule up from the keyboard', async () => {
    const up = row('Lost deal: notify').locator('button.move-up');
    await up.focus();
    await page.keyboard.press('Enter');
    // The page shown after the first change also says "saved": wait for the new order.
    await frame().locator('#rule-1[data-rule="Lost deal: notify"]').waitFor();
    await frame().locator('#map-changed').waitFor();
    await expect(tableOrder()).resolves.toEqual(['Lost deal: notify', 'Won deal: invoice']);
    expect(await storedOrder()).toEqual([
      ['Lost deal: notify', false],
      ['Won deal: invoice', true],
    ]);
    // The first rule cannot go higher; the last cannot go lower.
    await expect(row('Lost deal: notify').locator('button.move-up').count()).resolves.toBe(0);
    await expect(row('Won deal: invoice').locator('button.move-down').count()).resolves.toBe(0);
    await shot('12-rules-map-moved');
  });

  it('deletes a rule after asking, and keeps it when the admin changes their mind', async () => {
    await row('Lost deal: notify').locator('button.delete').click();
    await frame().locator('#delete-ask').waitFor();
    await shot('13-rule-delete-ask');
    await frame().locator('#delete-cancel').click();
    await frame().locator('#rules-map').waitFor();
    await expect(tableOrder()).resolves.toEqual(['Lost deal: notify', 'Won deal: invoice']);
    await row('Lost deal: notify').locator('button.delete').click();
    await frame().locator('#delete-confirm').click();
    await frame().locator('#map-changed').waitFor();
    await expect(frame().locator('#map-changed').textContent()).resolves.toBe(
      'The rule was deleted.',
    );
    await expect(tableOrder()).resolves.toEqual(['Won deal: invoice']);
    expect(await storedOrder()).toEqual([['Won deal: invoice', true]]);
    // Back to the question: a page that says the rule is gone, not Chrome's error page for a
    // form posted again (the question was the answer to a POST).
    // (The browser's Back: the joint history's last entry is the frame's.)
    await page.evaluate('history.back()');
    await frame().locator('#map-refused').waitFor();
    const urls = page.frames().map((f) => f.url());
    expect(urls.filter((u) => u.startsWith('chrome-error:'))).toEqual([]);
    await expect(frame().locator('#delete-confirm').count()).resolves.toBe(0);
    expect(await storedOrder()).toEqual([['Won deal: invoice', true]]);
  });

  it('asks before "Show secrets" or a dry run drops an edit typed into the JSON', async () => {
    const editor = frame().locator('#map');
    if (!(await editor.isVisible())) await frame().locator('#json-editor summary').click();
    const typed = (await editor.inputValue()).replace('Won deal: invoice', 'Won deal: invoice!');
    await editor.fill(typed);
    const asked: string[] = [];
    const until = async (done: () => boolean) => {
      for (let i = 0; i < 100 && !done(); i++) await new Promise((r) => setTimeout(r, 50));
    };
    const answer = (accept: boolean) =>
      page.once('dialog', (d) => {
        asked.push(d.message());
        void (accept ? d.accept() : d.dismiss());
      });
    answer(false);
    await frame().locator('#reveal').click();
    await until(() => asked.length === 1);
    expect(asked[0]).toBe('Your changes to the JSON are not saved and will be lost. Go on?');
    // Stayed: the edit is still there.
    await expect(editor.inputValue()).resolves.toBe(typed);
    answer(false);
    await frame().locator('#dry-run').click();
    await until(() => asked.length === 2);
    await expect(editor.inputValue()).resolves.toBe(typed);
    // Control: untouched, nothing is asked.
    await editor.fill(
      await editor.evaluate((t) => (t as unknown as { defaultValue: string }).defaultValue),
    );
    await frame().locator('#reveal').click();
    await frame().locator('#secrets-note').filter({ hasText: 'shown in clear' }).waitFor();
    expect(asked).toHaveLength(2);
  });

  it('shows a non-admin the same table without buttons', async () => {
    await page.goto(`${h.portal.url}/app?user=2`);
    await frame().locator('#figures').waitFor();
    await frame().locator('#nav-rules').click();
    await frame().locator('#rules-map').waitFor();
    await expect(tableOrder()).resolves.toEqual(['Won deal: invoice']);
    await expect(frame().locator('#rules-map button').count()).resolves.toBe(0);
    await expect(frame().locator('#new-rule').count()).resolves.toBe(0);
  });
});
