import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { getRuleMap, saveRuleMap } from '../../../server/rules/map-store.js';
import { getSetting } from '../../../db/stores/settings.js';
import type { EventMap } from '../../../server/rules/model.js';
import { revealMap } from '../../../server/rules/secret-fields.js';
import { seedDeals, startUiHarness, uiTestMap, type UiHarness } from '../../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui-client.js';

const PASS = 'erp-pass-9f31';
const QUERY_TOKEN = 'tok-secret-7741';
const HEADER_TOKEN = 'tok-hdr-5519';
const SIGNING = 'whsec_c2lnbmluZy1rZXktb2YtdGhlLW1hcA==';

/** The harness's two rules (with their 7 days of runs) and one rule per kind of words. */
function richMap(sinkUrl: string) {
  return {
    rules: [
      {
        name: 'Paid deal',
        on: ['ONCRMDEALUPDATE'],
        when: [
          { field: 'STAGE_ID', becomes: 'C1:WON' },
          { field: 'OPPORTUNITY', equals: 1500 },
        ],
        actions: [
          {
            type: 'http',
            name: 'invoice',
            method: 'POST',
            url: `https://erp-user:${PASS}@accounting.example/api/invoices?token=${QUERY_TOKEN}`,
            headers: { Authorization: `Bearer ${HEADER_TOKEN}` },
            secret: SIGNING,
            body: { dealId: '{{deal.ID}}' },
          },
          { type: 'telegram', chatId: '-100777', text: 'Paid {{deal.TITLE}}' },
          {
            type: 'email',
            to: ['boss@example.com', 'accounts@example.com'],
            subject: 'Paid',
            text: 'Deal {{deal.ID}}',
          },
          { type: 'sms', to: '{{contact.PHONE}}', text: 'Thank you' },
          {
            type: 'bitrix',
            method: 'crm.timeline.comment.add',
            params: { fields: { ENTITY_ID: '{{deal.ID}}', ENTITY_TYPE: 'deal', COMMENT: 'paid' } },
          },
        ],
        slaSeconds: 60,
      },
      {
        name: 'Responsible changed',
        on: ['ONCRMDEALUPDATE'],
        when: [
          { field: 'ASSIGNED_BY_ID', changed: true },
          { field: 'STAGE_ID', in: ['NEW', 'PREPARATION'] },
          { field: 'contact.PHONE', equals: '' },
        ],
        actions: [{ type: 'telegram', text: 'Reassigned {{deal.ID}}' }],
      },
      {
        name: 'Retitle',
        on: ['ONCRMDEALUPDATE'],
        when: [{ field: 'TITLE', equals: 'x' }],
        actions: [
          {
            type: 'bitrix',
            method: 'crm.deal.update',
            params: { id: '{{deal.ID}}', fields: { TITLE: 'y' } },
          },
        ],
      },
      {
        name: 'Lead ping',
        on: ['ONCRMLEADADD'],
        actions: [{ type: 'http', method: 'GET', url: `${sinkUrl}/lead` }],
      },
      ...uiTestMap(sinkUrl).rules,
    ],
  };
}

/** The HTML of one rule's row (and of its warnings row, if any). */
const rowOf = (html: string, name: string): string => {
  const at = html.indexOf(`data-rule="${name}"`);
  if (at < 0) return '';
  const end = html.indexOf('</tr>', at);
  return html.slice(html.lastIndexOf('<tr', at), end);
};
const warningsOf = (html: string, name: string): string =>
  /<tr class="rule-warnings" data-rule="([^"]*)">([\s\S]*?)<\/tr>/g.exec(
    html.slice(html.indexOf(`<tr class="rule-warnings" data-rule="${name}"`)),
  )?.[2] ?? '';
/** Text without tags, entities decoded, spaces collapsed. */
const words = (html: string): string =>
  html
    .replace(/<[^>]+>/g, '')
    .replace(/&#34;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/\s+/g, ' ')
    .trim();

describe('the map page', () => {
  let h: UiHarness;
  let admin: UiSession;
  let reader: UiSession;
  const db = () => h.t.deps.db;
  const ownMap = async () => getRuleMap(db(), h.portal.memberId);
  const rawOwn = async () => JSON.stringify(await getSetting(db(), h.portal.memberId, 'rules'));
  const csrf = async (s: UiSession) => csrfOf((await getPage(h, '/ui/rules', s.cookie)).html);
  const post = async (path: string, fields: Record<string, string>, s = admin) =>
    postForm(h, path, { _csrf: await csrf(s), ...fields }, s.cookie);
  const names = (m: EventMap | undefined) => m?.rules.map((r) => r.name);

  beforeAll(async () => {
    h = await startUiHarness();
    await seedDeals(h);
    admin = await openSession(h);
    reader = await openSession(h, { userId: 2 });
  });
  afterAll(async () => {
    await h.close();
  });

  it("turns off a rule of the default map by saving the portal's own map; the default stays", async () => {
    expect(await ownMap()).toBeUndefined();
    const res = await post('/ui/rules/toggle', { name: 'Lost deal: notify', enabled: '0' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toMatch(/^\/ui\/rules\?changed=off.*#rule-2$/);
    const own = await ownMap();
    expect(own?.rules.map((r) => [r.name, r.enabled])).toEqual([
      ['Won deal: invoice', undefined],
      ['Lost deal: notify', false],
    ]);
    expect((await getRuleMap(db()))?.rules[1]?.enabled).toBeUndefined();
    const page = await getPage(h, res.headers.get('location') ?? '', admin.cookie);
    expect(page.html).toContain('id="map-changed"');
    // Said as what it did (it read "The map was saved.").
    expect(words(page.html)).toContain('The rule was turned off: it runs for no event');
    expect(page.html).toMatch(/id="map-source">this portal/);
    expect(rowOf(page.html, 'Lost deal: notify')).toContain('data-enabled="false"');
    expect(words(rowOf(page.html, 'Lost deal: notify'))).toContain('Enable');
  });

  it("shows each rule's last 7 days' success from the rollups, not from the runs", async () => {
    const before = await getPage(h, '/ui/rules', admin.cookie);
    const won = rowOf(before.html, 'Won deal: invoice');
    expect(won).toContain('data-succeeded="1" data-total="1"');
    // The percentage and its sign kept together (a Russian walk saw "(0 / %)" wrapped).
    expect(won).toContain('1 of 1 (100&nbsp;%)');
    expect(rowOf(before.html, 'Lost deal: notify')).toMatch(/data-succeeded="0" data-total="[1-9]/);
    // Control that the figures are not counted from the runs: without them they stay.
    expect(Number((await db()('action_runs').count({ n: '*' }))[0]!.n)).toBeGreaterThan(0);
    await db()('action_runs').del();
    const after = await getPage(h, '/ui/rules', admin.cookie);
    expect(rowOf(after.html, 'Won deal: invoice')).toContain('data-succeeded="1" data-total="1"');
  });

  it("keeps a renamed rule's figures under its new name, in the builder and the JSON editor", async () => {
    const won = (await ownMap())!.rules.find((r) => r.name === 'Won deal: invoice')!;
    // Renamed in the builder.
    const saved = await post('/ui/rules/builder/save', {
      rule: JSON.stringify({ ...won, name: 'Won deal: invoice (ERP)' }),
      original: 'Won deal: invoice',
    });
    expect(saved.status).toBe(200);
    const page = await getPage(h, '/ui/rules', admin.cookie);
    expect(rowOf(page.html, 'Won deal: invoice (ERP)')).toContain(
      'data-succeeded="1" data-total="1"',
    );
    // Then in place in the JSON editor: the week follows it again.
    const map = (await ownMap())!;
    const renamed = {
      ...map,
      rules: map.rules.map((r) =>
        r.name === 'Won deal: invoice (ERP)' ? { ...r, name: 'Won deal: ERP invoice' } : r,
      ),
    };
    expect((await post('/ui/rules', { map: JSON.stringify(renamed) })).status).toBe(200);
    const again = await getPage(h, '/ui/rules', admin.cookie);
    expect(rowOf(again.html, 'Won deal: ERP invoice')).toContain(
      'data-succeeded="1" data-total="1"',
    );
    // The dashboard's per-rule table names the rule as it is called now, not as it was.
    const dash = await getPage(h, '/ui', admin.cookie);
    expect(dash.html).toContain('Won deal: ERP invoice');
    expect(dash.html).not.toContain('Won deal: invoice');
    // Back to its first name: the figures stay with it, and nothing counts twice.
    const back = await post('/ui/rules/builder/save', {
      rule: JSON.stringify({ ...won, name: 'Won deal: invoice' }),
      original: 'Won deal: ERP invoice',
    });
    expect(back.status).toBe(200);
    const last = await getPage(h, '/ui/rules', admin.cookie);
    expect(rowOf(last.html, 'Won deal: invoice')).toContain('data-succeeded="1" data-total="1"');
  });

  describe('with a map of every kind of condition and step', () => {
    beforeAll(async () => {
      const res = await post('/ui/rules', { map: JSON.stringify(richMap(h.sink.url)) });
      expect(res.status).toBe(200);
      expect(res.html).toContain('id="saved"');
    });

    it('puts conditions in words, in English', async () => {
      const page = await getPage(h, '/ui/rules', admin.cookie);
      // Stage names from the portal's own stage list (crm.status.list, crm.category.list).
      expect(words(rowOf(page.html, 'Paid deal'))).toContain(
        'Stage becomes Deal successful (pipeline Wholesale)',
      );
      expect(words(rowOf(page.html, 'Paid deal'))).toContain('Amount equals 1500');
      const responsible = words(rowOf(page.html, 'Responsible changed'));
      expect(responsible).toContain('Responsible changed');
      expect(responsible).toContain(
        'Stage is one of New (pipeline General), Document preparation (pipeline General)',
      );
      expect(responsible).toContain('Contact · Phone equals empty');
      expect(words(rowOf(page.html, 'Lead ping'))).toContain('Every event');
      // Data is marked as such: translators and the RU check leave it alone.
      expect(rowOf(page.html, 'Paid deal')).toContain(
        'Stage becomes <span class="v" translate="no">Deal successful</span> (pipeline <span class="v" translate="no">Wholesale</span>)',
      );
    });

    it('puts conditions in words, in Russian', async () => {
      const ru = await openSession(h, { lang: 'ru' });
      const page = await getPage(h, '/ui/rules', ru.cookie);
      const paid = words(rowOf(page.html, 'Paid deal'));
      expect(paid).toContain('Поле «Стадия» становится Deal successful (воронка Wholesale)');
      expect(paid).toContain('Поле «Сумма» равно 1500');
      expect(paid).toContain('POST на accounting.example');
      const responsible = words(rowOf(page.html, 'Responsible changed'));
      expect(responsible).toContain('Поле «Ответственный» изменяется');
      expect(responsible).toContain(
        'Поле «Стадия» — одно из: New (воронка General), Document preparation (воронка General)',
      );
      expect(responsible).toContain('Поле «Контакт · Телефон» равно пусто');
      expect(paid).toContain('SMS на номер из поля «Контакт · Телефон»');
      expect(words(rowOf(page.html, 'Lead ping'))).toContain('Любое событие');
      expect(words(page.html)).toContain('Успешных шагов за 7 дней');
    });

    it("shows each step's destination, SLA and trigger, and never a step's secret", async () => {
      const page = await getPage(h, '/ui/rules', admin.cookie);
      const paid = words(rowOf(page.html, 'Paid deal'));
      expect(paid).toContain('A deal was changed ONCRMDEALUPDATE');
      expect(paid).toContain('POST to accounting.example (invoice)');
      expect(paid).toContain('Telegram to chat -100777');
      expect(paid).toContain('E-mail to boss@example.com, accounts@example.com');
      // A recipient that is one field reads as the field, as a condition names it.
      expect(paid).toContain('SMS to Contact · Phone');
      expect(paid).toContain("Comment in the deal's timeline");
      expect(words(rowOf(page.html, 'Retitle'))).toContain('Bitrix24 method crm.deal.update');
      expect(paid).toContain('1 min');
      expect(words(rowOf(page.html, 'Responsible changed'))).toContain(
        "Telegram to the portal's alert chat",
      );
      const sinkHost = new URL(h.sink.url).host;
      expect(words(rowOf(page.html, 'Lead ping'))).toContain(`GET to ${sinkHost}`);
      for (const s of [PASS, QUERY_TOKEN, HEADER_TOKEN, SIGNING]) {
        expect(page.html).not.toContain(s);
      }
    });

    it('shows the map-check warnings beside the rules they name', async () => {
      const page = await getPage(h, '/ui/rules', admin.cookie);
      expect(warningsOf(page.html, 'Retitle')).toContain('data-code="self-trigger"');
      expect(warningsOf(page.html, 'Lead ping')).toContain('data-code="unbound-event"');
      expect(words(warningsOf(page.html, 'Lead ping'))).toContain('ONCRMLEADADD');
      // The warning leads to where it is put right.
      expect(warningsOf(page.html, 'Lead ping')).toMatch(
        /<a href="\/ui\/subscriptions[^"]*" class="to-subscriptions">Open Subscriptions<\/a>/,
      );
      expect(warningsOf(page.html, 'Retitle')).not.toContain('to-subscriptions');
      // Steps of channels this server has not set up (the harness sets none up): every event
      // the rule matches would fail at them.
      for (const rule of ['Paid deal', 'Responsible changed']) {
        expect(warningsOf(page.html, rule)).toContain('data-code="channel-not-set-up"');
      }
      expect(words(warningsOf(page.html, 'Paid deal'))).toContain(
        'e-mail is not set up on this server (SMTP_URL)',
      );
      // Only those: the other rules have no warnings row, and none is left for the top.
      expect(page.html.match(/class="rule-warnings"/g)).toHaveLength(4);
      expect(page.html).not.toContain('id="map-warnings"');
    });

    it('turns a rule off and on again; secrets stay sealed and the rest of the map is kept', async () => {
      const before = (await ownMap())!;
      const off = await post('/ui/rules/toggle', { name: 'Paid deal', enabled: '0' });
      expect(off.status).toBe(303);
      const after = (await ownMap())!;
      expect(after.rules[0]?.enabled).toBe(false);
      const raw = await rawOwn();
      for (const s of [PASS, QUERY_TOKEN, HEADER_TOKEN, SIGNING]) expect(raw).not.toContain(s);
      expect(raw).toContain('"$enc":"v1.');
      const open = (m: EventMap) => revealMap(m, h.t.deps.box);
      const expected = open(before);
      expected.rules[0]!.enabled = false;
      expect(open(after)).toEqual(expected);
      // Control: the stored credentials still open to what was written.
      const invoice = open(after).rules[0]!.actions[0] as { secret: string; url: string };
      expect(invoice.secret).toBe(SIGNING);
      expect(invoice.url).toContain(PASS);

      const on = await post('/ui/rules/toggle', { name: 'Paid deal', enabled: '1' });
      expect(on.status).toBe(303);
      const again = (await ownMap())!;
      expect('enabled' in again.rules[0]!).toBe(false);
      expect(open(again)).toEqual(open(before));
    });

    it('moves a rule up and down; a repeated or stale click moves nothing', async () => {
      const start = names(await ownMap())!;
      const at = start.indexOf('Lead ping');
      const up = await post('/ui/rules/move', { name: 'Lead ping', at: String(at), dir: 'up' });
      expect(up.status).toBe(303);
      expect(up.headers.get('location')).toContain(`#rule-${at}`);
      const moved = names(await ownMap())!;
      expect(moved.indexOf('Lead ping')).toBe(at - 1);
      expect(moved[at]).toBe(start[at - 1]);
      const stale = await post('/ui/rules/move', { name: 'Lead ping', at: String(at), dir: 'up' });
      expect(stale.status).toBe(409);
      expect(stale.html).toContain('id="map-refused"');
      expect(names(await ownMap())).toEqual(moved);
      const down = await post('/ui/rules/move', {
        name: 'Lead ping',
        at: String(at - 1),
        dir: 'down',
      });
      expect(down.status).toBe(303);
      expect(names(await ownMap())).toEqual(start);
      const page = await getPage(h, '/ui/rules', admin.cookie);
      const order = [...page.html.matchAll(/<tr id="rule-\d+" data-rule="([^"]*)"/g)].map(
        (m) => m[1],
      );
      expect(order).toEqual(start.map((n) => n.replace(/'/g, '&#39;')));
    });

    it('refuses a change without the CSRF token, for an unknown rule, or with a bad form', async () => {
      const before = await rawOwn();
      const noCsrf = await postForm(
        h,
        '/ui/rules/toggle',
        { name: 'Paid deal', enabled: '0' },
        admin.cookie,
      );
      expect(noCsrf.status).toBe(403);
      const unknown = await post('/ui/rules/toggle', { name: 'No such rule', enabled: '0' });
      expect(unknown.status).toBe(404);
      expect(words(unknown.html)).toContain('There is no rule with this name');
      const bad = await post('/ui/rules/move', { name: 'Paid deal', at: 'first', dir: 'up' });
      expect(bad.status).toBe(400);
      expect(words(bad.html)).toContain('The form was incomplete');
      expect(await rawOwn()).toBe(before);
      // Control: the same change with the token is made.
      expect((await post('/ui/rules/toggle', { name: 'Paid deal', enabled: '0' })).status).toBe(
        303,
      );
      expect(await rawOwn()).not.toBe(before);
      await post('/ui/rules/toggle', { name: 'Paid deal', enabled: '1' });
    });

    it('shows a non-admin the map read-only: no buttons, and the changes answer 403', async () => {
      const adminPage = await getPage(h, '/ui/rules', admin.cookie);
      // Control: an admin has the buttons and the links to the builder.
      expect(adminPage.html).toContain('action="/ui/rules/toggle');
      expect(adminPage.html).toContain('action="/ui/rules/move');
      expect(adminPage.html).toContain('id="new-rule"');
      expect(adminPage.html).toContain('href="/ui/rules/edit?name=Paid+deal');
      const page = await getPage(h, '/ui/rules', reader.cookie);
      expect(page.status).toBe(200);
      expect(words(rowOf(page.html, 'Paid deal'))).toContain('Stage becomes Deal successful');
      expect(page.html).not.toContain('/ui/rules/toggle');
      expect(page.html).not.toContain('/ui/rules/move');
      expect(page.html).not.toContain('/ui/rules/new');
      // The rule's name opens the builder, which a reader sees read-only.
      expect(page.html).toContain('href="/ui/rules/edit?name=Paid+deal');
      expect(words(page.html)).toContain('The map as JSON');
      expect(words(page.html)).not.toContain('Edit as JSON');
      const builder = await getPage(h, '/ui/rules/edit?name=Paid+deal', reader.cookie);
      expect(builder.status).toBe(200);
      expect(builder.html).toContain('id="builder-readonly"');
      expect(builder.html).not.toContain('id="delete-rule-form"');
      const before = await rawOwn();
      const toggle = await post('/ui/rules/toggle', { name: 'Paid deal', enabled: '0' }, reader);
      const move = await post(
        '/ui/rules/move',
        { name: 'Paid deal', at: '0', dir: 'down' },
        reader,
      );
      expect([toggle.status, move.status]).toEqual([403, 403]);
      expect(await rawOwn()).toBe(before);
    });

    it('deletes a rule after asking; its events stay; a repeated or stale click deletes nothing', async () => {
      const start = names(await ownMap())!;
      const at = start.indexOf('Lead ping');
      const counts = async () => [
        Number((await db()('events').count({ n: '*' }).first())?.n),
        Number((await db()('action_runs').count({ n: '*' }).first())?.n),
      ];
      const kept = await counts();
      const page = await getPage(h, '/ui/rules', admin.cookie);
      expect(words(rowOf(page.html, 'Lead ping'))).toContain('Delete');
      // The table's button asks first, naming the rule and what stays; nothing is changed yet.
      // The question is a page of its own (GET): Back to it after the deletion showed Chrome's
      // error page in the frame when it was the answer to a POST.
      expect(rowOf(page.html, 'Lead ping')).toMatch(
        /<form method="get" action="\/ui\/rules\/delete"/,
      );
      const ask = await getPage(
        h,
        `/ui/rules/delete?name=${encodeURIComponent('Lead ping')}&at=${at}`,
        admin.cookie,
      );
      expect(ask.status).toBe(200);
      expect(words(ask.html)).toContain('Delete the rule: Lead ping');
      expect(words(ask.html)).toContain('The events it ran for stay in the log');
      // "Keep it" goes back to the rule's row; asked from the builder, back to the builder.
      expect(ask.html).toMatch(/href="\/ui\/rules[^"#]*#rule-\d+" id="delete-cancel"/);
      // A page loaded before (its form still a POST) is sent to the question.
      const posted = await post('/ui/rules/delete', {
        name: 'Lead ping',
        at: String(at),
        from: 'builder',
      });
      expect(posted.status).toBe(303);
      const fromBuilder = await getPage(h, posted.headers.get('location')!, admin.cookie);
      expect(fromBuilder.html).toMatch(
        /href="\/ui\/rules\/edit\?[^"]*name=Lead(\+|%20)ping[^"]*" id="delete-cancel"/,
      );
      expect(names(await ownMap())).toEqual(start);
      const done = await post('/ui/rules/delete', {
        name: 'Lead ping',
        at: String(at),
        confirm: '1',
      });
      expect(done.status).toBe(303);
      expect(done.headers.get('location')).toContain('changed=deleted');
      expect(names(await ownMap())).toEqual(start.filter((n) => n !== 'Lead ping'));
      expect(await counts()).toEqual(kept);
      const after = await getPage(h, '/ui/rules?changed=deleted', admin.cookie);
      expect(words(after.html)).toContain('The rule was deleted.');
      // Back to the question: the rule is gone, said so, and nothing is asked again.
      const back = await getPage(
        h,
        `/ui/rules/delete?name=${encodeURIComponent('Lead ping')}&at=${at}`,
        admin.cookie,
      );
      expect(back.status).toBe(404);
      expect(back.html).not.toContain('id="delete-confirm"');
      // A second click (the page shown before) and a stale place change nothing more.
      const again = await post('/ui/rules/delete', {
        name: 'Lead ping',
        at: String(at),
        confirm: '1',
      });
      expect(again.status).toBe(404);
      const other = start.find((n, i) => n !== 'Lead ping' && i > at)!;
      const stale = await post('/ui/rules/delete', {
        name: other,
        at: String(start.indexOf(other)),
        confirm: '1',
      });
      expect(stale.status).toBe(409);
      expect(names(await ownMap())).toEqual(start.filter((n) => n !== 'Lead ping'));
      // A reader can neither ask nor delete, and has no button.
      const reader403 = await post(
        '/ui/rules/delete',
        { name: other, at: String(start.indexOf(other) - 1), confirm: '1' },
        reader,
      );
      expect(reader403.status).toBe(403);
      expect((await getPage(h, '/ui/rules', reader.cookie)).html).not.toContain('/ui/rules/delete');
      // The builder has the same button, for the rule's place in the map.
      const builder = await getPage(
        h,
        `/ui/rules/edit?name=${encodeURIComponent(other)}`,
        admin.cookie,
      );
      expect(builder.html).toContain('id="delete-rule-form"');
      expect(builder.html).toContain(`name="at" value="${start.indexOf(other) - 1}"`);
    });
  });
});

describe('the map page and the portal’s field lists', () => {
  it('warns beside a rule that never matches: a value its field never takes, a stage not chosen', async () => {
    const h = await startUiHarness();
    try {
      const rule = (name: string, when: EventMap['rules'][number]['when']) => ({
        name,
        on: ['ONCRMDEALUPDATE'],
        when,
        actions: [
          { type: 'http' as const, method: 'POST' as const, url: `${h.sink.url}/hook`, body: {} },
        ],
      });
      const map: EventMap = {
        rules: [
          rule('Above 1000', [{ field: 'OPPORTUNITY', equals: '> 1000' }]),
          rule('Stage not chosen', [{ field: 'STAGE_ID', becomes: '' }]),
          rule('Fine', [{ field: 'STAGE_ID', becomes: 'WON' }]),
        ],
      };
      await saveRuleMap(h.t.deps.db, h.portal.memberId, map, h.t.clock.now());
      const page = await getPage(h, '/ui/rules', (await openSession(h)).cookie);
      // Said by the builder once, at save; the list showed the rules "on" and nothing more.
      expect(warningsOf(page.html, 'Above 1000')).toContain('data-code="value-type"');
      expect(warningsOf(page.html, 'Stage not chosen')).toContain('data-code="value-type"');
      expect(words(warningsOf(page.html, 'Stage not chosen'))).toContain('nothing chosen');
      // Control: the rule with a stage chosen has no warnings row.
      expect(page.html.match(/class="rule-warnings"/g)).toHaveLength(2);
    } finally {
      await h.close();
    }
  });
});

describe('the map page with the production settling time', () => {
  it('warns beside a rule whose SLA no event can meet', async () => {
    const h = await startUiHarness({ env: { EVENT_SETTLE_MS: '1000' } });
    try {
      const map: EventMap = {
        rules: [
          {
            name: 'Instant',
            on: ['ONCRMDEALUPDATE'],
            slaSeconds: 1,
            actions: [{ type: 'http', method: 'POST', url: `${h.sink.url}/hook`, body: {} }],
          },
          {
            name: 'Patient',
            on: ['ONCRMDEALUPDATE'],
            slaSeconds: 30,
            actions: [{ type: 'http', method: 'POST', url: `${h.sink.url}/hook`, body: {} }],
          },
        ],
      };
      await saveRuleMap(h.t.deps.db, undefined, map, h.t.clock.now());
      const page = await getPage(h, '/ui/rules', (await openSession(h)).cookie);
      expect(warningsOf(page.html, 'Instant')).toContain('data-code="sla-too-short"');
      expect(words(warningsOf(page.html, 'Instant'))).toContain('EVENT_SETTLE_MS');
      expect(page.html.match(/class="rule-warnings"/g)).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});
