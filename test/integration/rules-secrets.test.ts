import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEFAULT_SCOPE, getSetting } from '../../db/stores/settings.js';
import { deleteRuleMap, getRuleMap, saveRuleMap } from '../../server/rules/map-store.js';
import { saveMapSealed, sealStoredMaps } from '../../server/rules/saved-map.js';
import type { EventMap, HttpAction } from '../../server/rules/model.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { runCliIn } from '../helpers/cli.js';
import { secretStepMap } from '../helpers/secret-map.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui/ui-client.js';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Before step secrets were sealed, a non-admin user saw an http step's `secret` and `Authorization`
 * header on the rules page and in the rules export; the map was stored with them in clear.
 */
const SECRET = 'whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Ng==';
const TOKEN = 'erp-bearer-7f3a9c1d5e';
const ENV_TOKEN = 'from-the-environment-42';

describe('secrets of rule steps', () => {
  let h: UiHarness;
  let admin: UiSession;
  let reader: UiSession;
  const mapWith = (url: string, extra: Record<string, unknown> = {}) =>
    secretStepMap({ url, token: TOKEN, secret: SECRET, envName: 'ERP_TOKEN', extra });
  const save = async (map: unknown) => {
    const csrf = csrfOf((await getPage(h, '/ui/rules', admin.cookie)).html);
    return postForm(
      h,
      '/ui/rules',
      { _csrf: csrf, map: typeof map === 'string' ? map : JSON.stringify(map) },
      admin.cookie,
    );
  };
  const unescape = (html: string) =>
    html
      .replace(/&#34;/g, '"')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&');
  const shownMap = (html: string) =>
    unescape(
      /<(?:textarea[^>]*|pre id="map-readonly")>([\s\S]*?)<\/(?:textarea|pre)>/.exec(html)?.[1] ??
        '',
    );

  beforeAll(async () => {
    h = await startUiHarness({
      env: { ACTION_SECRET_ENV: 'ERP_TOKEN', ERP_TOKEN: ENV_TOKEN },
    });
    admin = await openSession(h);
    reader = await openSession(h, { userId: 2 });
    const saved = await save(mapWith(`${h.sink.url}/invoices`));
    expect(saved.status).toBe(200);
  });
  afterAll(async () => {
    await h.close();
  });

  it('are stored encrypted: the database row holds no secret in clear', async () => {
    // An admin's save is the portal's own map.
    const raw = JSON.stringify(await getSetting(h.t.deps.db, h.portal.memberId, 'rules'));
    expect(raw).toContain('Won deal: invoice');
    expect(raw).not.toContain(SECRET);
    expect(raw).not.toContain(TOKEN);
    expect(raw).toContain('"$enc":"v1.');
    expect(raw).toContain('{"$env":"ERP_TOKEN"}');
    // Control: the stored ciphertext opens to the secret with the token key.
    const stored = (await getRuleMap(h.t.deps.db, h.portal.memberId))!.rules[0]!.actions[0] as {
      secret: { $enc: string };
    };
    expect(h.t.deps.box.decrypt(stored.secret.$enc)).toBe(SECRET);
  });

  it('are not shown to a non-admin on the rules page nor in the export', async () => {
    const page = await getPage(h, '/ui/rules', reader.cookie);
    expect(page.status).toBe(200);
    const shown = shownMap(page.html);
    // Control: the reader does see the map, with the step and its plain header.
    expect(shown).toContain('Won deal: invoice');
    expect(shown).toContain('application/json');
    expect(page.html).not.toContain(SECRET);
    expect(page.html).not.toContain(TOKEN);
    expect(JSON.parse(shown).rules[0].actions[0]).toMatchObject({
      secret: '********',
      headers: { Authorization: '********', 'X-Erp-Key': { $env: 'ERP_TOKEN' } },
    });
    expect(page.html).not.toContain('id="export"');
    const exported = await getPage(h, '/ui/rules/export', reader.cookie);
    expect(exported.status).toBe(403);
    expect(exported.html).not.toContain(SECRET);
    expect(exported.html).not.toContain(TOKEN);
    const reveal = await postForm(
      h,
      '/ui/rules/reveal',
      { _csrf: csrfOf(page.html) },
      reader.cookie,
    );
    expect(reveal.status).toBe(403);
    expect(reveal.html).not.toContain(TOKEN);
  });

  it('are masked for an admin until the admin asks to see them', async () => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    expect(page.html).not.toContain(TOKEN);
    expect(page.html).toContain('id="reveal"');
    const exported = await getPage(h, '/ui/rules/export', admin.cookie);
    expect(exported.status).toBe(200);
    expect(exported.html).not.toContain(TOKEN);
    expect(JSON.parse(exported.html).rules[0].actions[0].secret).toBe('********');
    const revealed = await postForm(
      h,
      '/ui/rules/reveal',
      { _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(revealed.status).toBe(200);
    expect(JSON.parse(shownMap(revealed.html)).rules[0].actions[0]).toMatchObject({
      secret: SECRET,
      headers: { Authorization: `Bearer ${TOKEN}`, 'X-Erp-Key': { $env: 'ERP_TOKEN' } },
    });
    const full = await postForm(h, '/ui/rules/export', { _csrf: csrfOf(page.html) }, admin.cookie);
    expect(JSON.parse(full.html).rules[0].actions[0].secret).toBe(SECRET);
  });

  it('keep their stored values when the masked map is saved again, and are sent in clear', async () => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    const resaved = await save(shownMap(page.html));
    expect(resaved.status).toBe(200);
    const deal = await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW' });
    await h.drain();
    h.sink.requests.length = 0;
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
    const [req] = h.sink.requests;
    expect(req?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    // `$env` is read when the step is sent.
    expect(req?.headers['x-erp-key']).toBe(ENV_TOKEN);
    expect(req?.headers['webhook-signature']).toMatch(/^v1,/);
    const run = await h.t.deps.db('action_runs').where({ step_name: 'invoice' }).first();
    expect(JSON.stringify(run)).not.toContain(TOKEN);
    expect(JSON.stringify(run)).not.toContain(ENV_TOKEN);
    const eventPage = await getPage(h, `/ui/events/${run.event_id}`, admin.cookie);
    expect(eventPage.html).not.toContain(TOKEN);
  });

  it('keep their stored values for a step renamed in place in the JSON', async () => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    const shown = JSON.parse(shownMap(page.html)) as EventMap;
    const step = (m: EventMap | undefined) => m!.rules[0]!.actions[0] as HttpAction;
    step(shown).name = 'erp-invoice';
    const res = await save(shown);
    expect(res.status).toBe(200);
    const stored = step(await getRuleMap(h.t.deps.db, h.portal.memberId));
    expect(stored.name).toBe('erp-invoice');
    const auth = stored.headers!.Authorization as { $enc: string };
    expect(h.t.deps.box.decrypt(auth.$enc)).toBe(`Bearer ${TOKEN}`);
    expect(h.t.deps.box.decrypt((stored.secret as { $enc: string }).$enc)).toBe(SECRET);
    // And back, for the checks below.
    step(shown).name = 'invoice';
    expect((await save(shown)).status).toBe(200);
  });

  it('keep their stored values for the steps beside one renamed in place in the JSON', async () => {
    // A second http step with a token of its own, unnamed, after the named one.
    const page = await getPage(h, '/ui/rules', admin.cookie);
    const shown = JSON.parse(shownMap(page.html)) as EventMap;
    const second: HttpAction = {
      type: 'http',
      method: 'POST',
      url: `${h.sink.url}/second`,
      headers: { Authorization: 'Bearer second-token-77' },
    };
    shown.rules[0]!.actions.push(second);
    expect((await save(shown)).status).toBe(200);
    const again = JSON.parse(
      shownMap((await getPage(h, '/ui/rules', admin.cookie)).html),
    ) as EventMap;
    (again.rules[0]!.actions[0] as HttpAction).name = 'erp-renamed';
    const res = await save(again);
    expect(res.status).toBe(200);
    const stored = (await getRuleMap(h.t.deps.db, h.portal.memberId))!.rules[0]!.actions;
    const tokenOf = (a: unknown) =>
      h.t.deps.box.decrypt(((a as HttpAction).headers!.Authorization as { $enc: string }).$enc);
    expect([tokenOf(stored[0]), tokenOf(stored[1])]).toEqual([
      `Bearer ${TOKEN}`,
      'Bearer second-token-77',
    ]);
    // Back as it was, for the checks below.
    again.rules[0]!.actions.pop();
    (again.rules[0]!.actions[0] as HttpAction).name = 'invoice';
    expect((await save(again)).status).toBe(200);
  });

  it('keep their stored values for a rule renamed in place in the JSON', async () => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    const shown = JSON.parse(shownMap(page.html)) as EventMap;
    const was = shown.rules[0]!.name;
    shown.rules[0]!.name = 'Won deal: invoice in the ERP';
    const res = await save(shown);
    expect(res.status).toBe(200);
    const rule = (await getRuleMap(h.t.deps.db, h.portal.memberId))!.rules[0]!;
    expect(rule.name).toBe('Won deal: invoice in the ERP');
    const stored = rule.actions[0] as HttpAction;
    const auth = stored.headers!.Authorization as { $enc: string };
    expect(h.t.deps.box.decrypt(auth.$enc)).toBe(`Bearer ${TOKEN}`);
    expect(h.t.deps.box.decrypt((stored.secret as { $enc: string }).$enc)).toBe(SECRET);
    // And back, for the checks below.
    shown.rules[0]!.name = was;
    expect((await save(shown)).status).toBe(200);
  });

  it('keep their stored values for a header renamed in the JSON', async () => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    const shown = JSON.parse(shownMap(page.html)) as EventMap;
    const step = (m: EventMap | undefined) => m!.rules[0]!.actions[0] as HttpAction;
    const rename = (from: string, to: string) => {
      const headers = step(shown).headers!;
      step(shown).headers = Object.fromEntries(
        Object.entries(headers).map(([k, v]) => [k === from ? to : k, v]),
      );
    };
    rename('Authorization', 'X-Auth');
    expect((await save(shown)).status).toBe(200);
    const stored = step(await getRuleMap(h.t.deps.db, h.portal.memberId)).headers!;
    expect(h.t.deps.box.decrypt((stored['X-Auth'] as { $enc: string }).$enc)).toBe(
      `Bearer ${TOKEN}`,
    );
    // And back, for the checks below.
    rename('X-Auth', 'Authorization');
    expect((await save(shown)).status).toBe(200);
  });

  it('are not kept for a step whose URL now points elsewhere', async () => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    const moved = shownMap(page.html).replace(`${h.sink.url}/invoices`, 'https://evil.example/x');
    const res = await save(moved);
    expect(res.status).toBe(400);
    expect(res.html).toContain('$.rules[0].actions[0].secret');
    expect(res.html).toContain('stands for a stored secret');
  });

  it('refuse an $env variable the operator did not list', async () => {
    const res = await save(
      mapWith(`${h.sink.url}/invoices`, { secret: { $env: 'B24_CLIENT_SECRET' } }),
    );
    expect(res.status).toBe(400);
    expect(res.html).toContain('B24_CLIENT_SECRET is not listed in ACTION_SECRET_ENV');
  });

  it('are masked in the CLI export unless --with-secrets, and a masked import keeps them', async () => {
    const scope = ['--portal', h.portal.memberId];
    const masked = await runCliIn(h.t, ['rules', 'export', ...scope]);
    expect(masked.code).toBe(0);
    expect(masked.out).not.toContain(TOKEN);
    expect(masked.out).not.toContain(SECRET);
    expect(JSON.parse(masked.out).rules[0].actions[0].secret).toBe('********');
    const file = path.join(h.t.dir, 'exported.json');
    fs.writeFileSync(file, masked.out);
    const imported = await runCliIn(h.t, ['rules', 'import', file, ...scope], {
      ACTION_SECRET_ENV: 'ERP_TOKEN',
    });
    expect(imported.code).toBe(0);
    const clear = await runCliIn(h.t, ['rules', 'export', ...scope, '--with-secrets']);
    expect(JSON.parse(clear.out).rules[0].actions[0]).toMatchObject({
      secret: SECRET,
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
  });
});

/**
 * Any portal's admin may name a listed variable: `{"$env": "ERP_TOKEN"}` in a step to an
 * address of their own received the operator's token. `NAME@origin` sends it to that origin
 * only; the step to another fails, naming the field and the origin, and sends nothing.
 */
describe('an $env variable bound to an origin (ACTION_SECRET_ENV NAME@origin)', () => {
  let h: UiHarness;
  let admin: UiSession;
  let erp: HttpSink;
  beforeAll(async () => {
    erp = await startHttpSink();
    h = await startUiHarness({
      env: { ACTION_SECRET_ENV: `ERP_TOKEN@${erp.url}/`, ERP_TOKEN: ENV_TOKEN },
    });
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
    await erp.close();
  });
  const saveTo = async (url: string) => {
    const csrf = csrfOf((await getPage(h, '/ui/rules', admin.cookie)).html);
    const map = secretStepMap({ url, token: TOKEN, secret: SECRET, envName: 'ERP_TOKEN' });
    const res = await postForm(
      h,
      '/ui/rules',
      { _csrf: csrf, map: JSON.stringify(map) },
      admin.cookie,
    );
    expect(res.status).toBe(200);
  };
  const wonDeal = async () => {
    const deal = await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
    return (await h.t.deps
      .db('action_runs')
      .where({ step_name: 'invoice' })
      .orderBy('id', 'desc')
      .first()) as {
      status: string;
      error: string | null;
    };
  };

  it('sends it to that origin', async () => {
    await saveTo(`${erp.url}/invoices`);
    const run = await wonDeal();
    expect(run.status).toBe('succeeded');
    expect(erp.requests.at(-1)?.headers['x-erp-key']).toBe(ENV_TOKEN);
  });

  it('fails a step to another address, naming where the variable may go, and sends nothing', async () => {
    await saveTo(`${h.sink.url}/collect`);
    h.sink.requests.length = 0;
    const run = await wonDeal();
    expect(run.status).toBe('failed');
    expect(run.error).toContain(
      `headers["X-Erp-Key"]: environment variable ERP_TOKEN is sent only to ${erp.url} (ACTION_SECRET_ENV), not to ${h.sink.url}`,
    );
    // Control: the step was tried (the row above) and nothing reached the other address.
    expect(h.sink.requests).toHaveLength(0);
    expect(JSON.stringify(await h.t.deps.db('action_runs'))).not.toContain(ENV_TOKEN);
  });
});

describe('a map stored before secrets were encrypted', () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness();
    // Stored as it was before step secrets were sealed: the secret and the header in clear, in the
    // default.
    const v = validateEventMap({
      rules: [
        {
          name: 'Won deal: invoice',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            {
              type: 'http',
              name: 'invoice',
              method: 'POST',
              url: `${h.sink.url}/invoices`,
              headers: { Authorization: `Bearer ${TOKEN}` },
              secret: SECRET,
            },
          ],
        },
      ],
    });
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    await saveRuleMap(h.t.deps.db, undefined, v.map, h.t.clock.now());
  });
  afterAll(async () => {
    await h.close();
  });

  it('shows a non-admin neither the secret nor the Authorization header, page or export', async () => {
    const reader = await openSession(h, { userId: 2 });
    const page = await getPage(h, '/ui/rules', reader.cookie);
    expect(page.status).toBe(200);
    expect(page.html).toContain('Won deal: invoice');
    expect(page.html).not.toContain(SECRET);
    expect(page.html).not.toContain(TOKEN);
    const exported = await getPage(h, '/ui/rules/export', reader.cookie);
    expect(exported.html).not.toContain(SECRET);
    expect(exported.html).not.toContain(TOKEN);
    // Control: the export holds the map for an admin (masked).
    const admin = await openSession(h);
    const own = await getPage(h, '/ui/rules/export', admin.cookie);
    expect(own.html).toContain('Won deal: invoice');
    expect(own.html).not.toContain(TOKEN);
  });

  it('are encrypted at the next start, and still opened for sending', async () => {
    expect(JSON.stringify(await getSetting(h.t.deps.db, DEFAULT_SCOPE, 'rules'))).toContain(TOKEN);
    expect(await sealStoredMaps(h.t.deps)).toBe(1);
    const raw = JSON.stringify(await getSetting(h.t.deps.db, DEFAULT_SCOPE, 'rules'));
    expect(raw).not.toContain(TOKEN);
    expect(raw).not.toContain(SECRET);
    expect(await sealStoredMaps(h.t.deps)).toBe(0);
    const deal = await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW' });
    await h.drain();
    h.sink.requests.length = 0;
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
    expect(h.sink.requests[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });
});

/**
 * The default map is the operator's (`rules import` without `--portal`), and every portal
 * without a map of its own runs it. Before, any portal's admin (anyone who installs the app)
 * read its credentials with "Show secrets", the export with secrets or the builder's reveal,
 * and a portal that saved its first own map from it (a rule turned off) took them over
 * readable.
 */
describe("the operator's default map", () => {
  let h: UiHarness;
  let admin: UiSession;
  const OPERATOR_TOKEN = 'operator-bearer-4f1e8a';
  const OPERATOR_SECRET = 'whsec_b3BlcmF0b3Itc2lnbmluZy1rZXk=';
  const revealedStep = async (path: string, form: Record<string, string> = {}) => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    return postForm(h, path, { _csrf: csrfOf(page.html), ...form }, admin.cookie);
  };

  beforeAll(async () => {
    h = await startUiHarness({ env: { ACTION_SECRET_ENV: 'ERP_TOKEN', ERP_TOKEN: 'x' } });
    admin = await openSession(h);
    const checked = validateEventMap(
      secretStepMap({
        url: `${h.sink.url}/invoices`,
        token: OPERATOR_TOKEN,
        secret: OPERATOR_SECRET,
        envName: 'ERP_TOKEN',
      }),
    );
    if (!checked.ok) throw new Error(JSON.stringify(checked.errors));
    expect((await saveMapSealed(h.t.deps, undefined, checked.map)).ok).toBe(true);
  });
  afterAll(async () => {
    await h.close();
  });

  const leaks = (text: string) => text.includes(OPERATOR_TOKEN) || text.includes(OPERATOR_SECRET);

  it('keeps its credentials from a portal admin: reveal, export with secrets, builder', async () => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    // Control: the admin sees the default map (masked) and is an admin.
    expect(page.html).toContain('Won deal: invoice');
    expect(page.html).toContain('id="export"');
    expect(page.html).not.toContain('id="reveal"');
    expect(page.html).toContain('id="operator-secrets"');
    const reveal = await revealedStep('/ui/rules/reveal');
    const exported = await revealedStep('/ui/rules/export');
    const builder = await revealedStep('/ui/rules/edit/reveal', { name: 'Won deal: invoice' });
    for (const r of [reveal, exported, builder]) {
      expect(r.status).toBe(200);
      expect(leaks(r.html)).toBe(false);
    }
    expect(JSON.parse(exported.html).rules[0].actions[0].secret).toBe('********');
    expect(builder.html).toContain('Won deal: invoice');
  });

  it('keeps them masked in the map a portal saves from it, and still sends them', async () => {
    // The portal's first own map: the default with its rule turned off, then on again.
    for (const enabled of ['0', '1']) {
      const res = await revealedStep('/ui/rules/toggle', { name: 'Won deal: invoice', enabled });
      expect(res.status).toBe(303);
    }
    const own = (await getRuleMap(h.t.deps.db, h.portal.memberId))!.rules[0]!.actions[0] as {
      secret: { $enc: string; $inherited?: boolean };
    };
    expect(own.secret.$inherited).toBe(true);
    for (const path of ['/ui/rules/reveal', '/ui/rules/export']) {
      const r = await revealedStep(path);
      expect(r.status).toBe(200);
      expect(leaks(r.html)).toBe(false);
    }
    const deal = await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
    expect(h.sink.requests.at(-1)?.headers.authorization).toBe(`Bearer ${OPERATOR_TOKEN}`);
    // The operator's own export still shows them.
    const cli = await runCliIn(h.t, [
      'rules',
      'export',
      '--portal',
      h.portal.memberId,
      '--with-secrets',
    ]);
    expect(cli.out).toContain(OPERATOR_TOKEN);
  });

  it("keeps the operator's token out of the step's output when its endpoint echoes it", async () => {
    // The portal's map was saved from the default above: its step holds the lent token.
    h.sink.handle((req) => ({
      body: { seen: req.headers.authorization, again: `token ${OPERATOR_TOKEN} ok`, id: 'INV-1' },
    }));
    try {
      const deal = await h.portal.addDeal({ TITLE: 'Echo', STAGE_ID: 'NEW' });
      await h.drain();
      await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
      await h.drain();
      expect(h.sink.requests.at(-1)?.headers.authorization).toBe(`Bearer ${OPERATOR_TOKEN}`);
      const outputs = (await h.t.deps
        .db('action_runs')
        .whereNotNull('output')
        .pluck('output')) as string[];
      const last = JSON.parse(outputs.at(-1)!) as { response: Record<string, string> };
      expect(last.response).toEqual({
        seen: '********',
        again: 'token ******** ok',
        id: 'INV-1',
      });
      expect(outputs.some((o) => o.includes(OPERATOR_TOKEN))).toBe(false);
    } finally {
      h.sink.handle(() => ({ body: { ok: true } }));
    }
  });

  /** The default map as the JSON editor shows it, changed by `change`, saved by the admin. */
  const saveChanged = async (change: (step: Record<string, unknown>) => void) => {
    const shown = JSON.parse((await revealedStep('/ui/rules/export')).html) as {
      rules: Array<{ actions: Array<Record<string, unknown>> }>;
    };
    change(shown.rules[0]!.actions[0]!);
    return revealedStep('/ui/rules', { map: JSON.stringify(shown) });
  };

  it("keeps the operator's secrets to the request they were written for", async () => {
    const host = new URL(h.sink.url).host;
    const moves: Array<[string, (step: Record<string, unknown>) => void]> = [
      // The WHATWG parser fetch uses sends this to evil.example; a regex read 127.0.0.1.
      ['a backslash before @', (st) => (st.url = `http://evil.example\\@${host}/invoices`)],
      ['another path on the same host', (st) => (st.url = `${h.sink.url}/export-all`)],
      ['another method', (st) => (st.method = 'PUT')],
      // The same URL and method, a request of the portal's own, signed with the operator's
      // secret and sent with its token (a review's "cancel every order").
      ['another body', (st) => (st.body = { orders: '*', action: 'cancel-all' })],
      [
        'a header more',
        (st) =>
          (st.headers = {
            ...(st.headers as Record<string, string>),
            'X-HTTP-Method-Override': 'DELETE',
          }),
      ],
      [
        'a plain header changed',
        (st) =>
          (st.headers = { ...(st.headers as Record<string, string>), 'Content-Type': 'text/xml' }),
      ],
    ];
    // Both ways a portal holds them: a first map of its own, and one saved before.
    for (const own of [false, true]) {
      if (!own) await deleteRuleMap(h.t.deps.db, h.portal.memberId);
      else
        expect(
          (await revealedStep('/ui/rules/toggle', { name: 'Won deal: invoice', enabled: '1' }))
            .status,
        ).toBe(303);
      for (const [what, move] of moves) {
        const res = await saveChanged(move);
        expect([own, what, res.status]).toEqual([own, what, 400]);
        expect(res.html).toMatch(
          /stands for a stored secret|keeps the default map&#39;s credential only for the request/,
        );
      }
      // Control: the same step unchanged saves, its headers in another order too.
      expect((await saveChanged(() => undefined)).status).toBe(200);
      const reordered = await saveChanged((st) => {
        const headers = st.headers as Record<string, unknown>;
        st.headers = Object.fromEntries(Object.entries(headers).reverse());
      });
      expect(reordered.status).toBe(200);
    }
  });

  it("never lends the operator's secrets to a builder test send of another request", async () => {
    // The portal runs the default map (no map of its own): the builder shows its step masked.
    await deleteRuleMap(h.t.deps.db, h.portal.memberId);
    const page = await getPage(
      h,
      `/ui/rules/edit?name=${encodeURIComponent('Won deal: invoice')}`,
      admin.cookie,
    );
    const data = JSON.parse(
      /<script type="application\/json" id="builder-data">([\s\S]*?)<\/script>/.exec(
        page.html,
      )![1]!,
    ) as { rule: { actions: Array<Record<string, unknown>> }; csrf: string };
    const deal = await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'WON' });
    const send = (
      change: (step: Record<string, unknown>) => void,
      extra: Record<string, string> = {},
    ) => {
      const rule = structuredClone(data.rule);
      change(rule.actions[0]!);
      return postForm(
        h,
        '/ui/rules/builder/send-step',
        {
          ...extra,
          _csrf: data.csrf,
          rule: JSON.stringify(rule),
          index: '0',
          event: 'ONCRMDEALUPDATE',
          id: String(deal.id),
        },
        admin.cookie,
      );
    };
    const before = h.sink.requests.length;
    for (const move of [
      (st: Record<string, unknown>) => (st.url = `${h.sink.url}/export-all`),
      (st: Record<string, unknown>) => (st.method = 'PUT'),
      (st: Record<string, unknown>) => (st.body = { orders: '*', action: 'cancel-all' }),
    ]) {
      const res = await send(move);
      expect(res.status).toBe(400);
      expect(res.html).toMatch(
        /stands for a stored secret|keeps the default map's credential only for the request/,
      );
    }
    // Nor under another header name, said to be the same header renamed in the form.
    const renamed = await send(
      (st) => {
        const headers = st.headers as Record<string, unknown>;
        st.headers = { 'X-Echo': headers.Authorization };
      },
      { steps: '["invoice"]', headers: JSON.stringify([{ 'X-Echo': 'Authorization' }]) },
    );
    expect(renamed.status).toBe(400);
    expect(h.sink.requests.slice(before).map((r) => r.headers.authorization)).toEqual([]);
    expect(h.sink.requests.slice(before).map((r) => r.headers['x-echo'])).toEqual([]);
    // Control: the step as the operator wrote it may be sent once, with its token.
    const same = await send(() => undefined);
    expect(same.status).toBe(200);
    expect(h.sink.requests.slice(before).map((r) => [r.method, r.url])).toEqual([
      ['POST', '/invoices'],
    ]);
  });

  it('marks at start what a portal map took over before saves marked it', async () => {
    // A portal map saved by an older version: the default's sealed values, unmarked.
    const defaults = (await getRuleMap(h.t.deps.db))!;
    await saveRuleMap(h.t.deps.db, h.portal.memberId, defaults, h.t.clock.now());
    expect(leaks((await revealedStep('/ui/rules/reveal')).html)).toBe(true);
    expect(await sealStoredMaps(h.t.deps)).toBe(1);
    expect(leaks((await revealedStep('/ui/rules/reveal')).html)).toBe(false);
    expect(await sealStoredMaps(h.t.deps)).toBe(0);
  });
});

/**
 * Webhook URLs whose key is in the path (a Bitrix24 inbound webhook, Slack, Discord…). Before,
 * they were stored in clear and shown whole to every user of the portal, on the rules page
 * and in the builder: only user:password and query keys counted as credentials.
 */
describe('a webhook URL whose key is in its path', () => {
  let h: UiHarness;
  const KEY = 'k3yWEBHOOKsecret99';
  beforeAll(async () => {
    h = await startUiHarness();
    const admin = await openSession(h);
    const map = {
      rules: [
        {
          name: 'notify',
          on: ['ONCRMDEALUPDATE'],
          when: [{ field: 'STAGE_ID', becomes: 'WON' }],
          actions: [
            {
              type: 'http',
              method: 'POST',
              url: `${h.sink.url}/rest/1/${KEY}/crm.timeline.comment.add.json`,
              body: { dealId: '{{deal.ID}}' },
            },
          ],
        },
      ],
    };
    const csrf = csrfOf((await getPage(h, '/ui/rules', admin.cookie)).html);
    const saved = await postForm(
      h,
      '/ui/rules',
      { _csrf: csrf, map: JSON.stringify(map) },
      admin.cookie,
    );
    expect(saved.status).toBe(200);
  });
  afterAll(async () => {
    await h.close();
  });

  it('is stored encrypted, masked for every user, and sent whole', async () => {
    expect(JSON.stringify(await getSetting(h.t.deps.db, h.portal.memberId, 'rules'))).not.toContain(
      KEY,
    );
    const reader = await openSession(h, { userId: 2 });
    for (const path of ['/ui/rules', '/ui/rules/edit?name=notify']) {
      const page = await getPage(h, path, reader.cookie);
      expect(page.status).toBe(200);
      // Control: the step's URL is on the page, masked.
      expect(page.html).toContain('/rest/1/********/crm.timeline.comment.add.json');
      expect(page.html).not.toContain(KEY);
    }
    const deal = await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
    expect(h.sink.requests.map((r) => r.url)).toContain(
      `/rest/1/${KEY}/crm.timeline.comment.add.json`,
    );
    const run = await h.t.deps.db('action_runs').first();
    expect(run.status).toBe('succeeded');
    expect(JSON.stringify(run)).not.toContain(KEY);
    const eventPage = await getPage(h, `/ui/events/${run.event_id}`, reader.cookie);
    expect(eventPage.status).toBe(200);
    expect(eventPage.html).not.toContain(KEY);
  });
});

/**
 * A default map stored before credentials were sealed (an older version, or another instance
 * that has not restarted yet; `sealStoredMaps` seals it at the next start). A portal that
 * saved its first own map from it took the operator's token over in clear and unmarked, and
 * could then send it to any path and method on that host.
 */
describe("the operator's default map stored unsealed", () => {
  let h: UiHarness;
  let admin: UiSession;
  const OPERATOR_TOKEN = 'operator-unsealed-7c21';
  beforeAll(async () => {
    h = await startUiHarness();
    admin = await openSession(h);
    const checked = validateEventMap({
      rules: [
        {
          name: 'Default',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            {
              type: 'http',
              name: 'dstep',
              method: 'POST',
              url: `${h.sink.url}/default`,
              headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` },
            },
          ],
        },
      ],
    });
    if (!checked.ok) throw new Error(JSON.stringify(checked.errors));
    await saveRuleMap(h.t.deps.db, undefined, checked.map, h.t.clock.now());
  });
  afterAll(async () => {
    await h.close();
  });

  const save = async (url: string, method: string) => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    const map = {
      rules: [
        {
          name: 'Default',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            { type: 'http', name: 'dstep', method, url, headers: { Authorization: '********' } },
          ],
        },
      ],
    };
    return postForm(
      h,
      '/ui/rules',
      { _csrf: csrfOf(page.html), map: JSON.stringify(map) },
      admin.cookie,
    );
  };

  it('keeps the token sealed and to its own request in the portal map saved from it', async () => {
    // Control: the portal's first own map, the step unchanged, saves.
    expect((await save(`${h.sink.url}/default`, 'POST')).status).toBe(200);
    const raw = JSON.stringify(await getSetting(h.t.deps.db, h.portal.memberId, 'rules'));
    expect(raw).not.toContain(OPERATOR_TOKEN);
    const step = (await getRuleMap(h.t.deps.db, h.portal.memberId))!.rules[0]!.actions[0] as {
      headers: Record<string, { $enc?: string; $inherited?: boolean }>;
    };
    expect(step.headers.Authorization).toMatchObject({ $inherited: true });
    // Then another path and method on the same host: refused, as for a sealed default.
    const moved = await save(`${h.sink.url}/attacker?x=1`, 'PUT');
    expect(moved.status).toBe(400);
    expect(moved.html).toContain('stands for a stored secret');
  });
});
