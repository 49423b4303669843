import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  frameRequest,
  seedDeals,
  startUiHarness,
  type UiHarness,
} from '../../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui-client.js';
import { seedDealEvent } from '../../helpers/seed-db.js';
import { recordActionRun } from '../../../db/stores/processing.js';
import { findPortalByMemberId } from '../../../db/stores/portals.js';
import { eraseEntityData } from '../../../server/retention/erase.js';
import { deleteEvents } from '../../../db/stores/retention.js';
import { replayEvents } from '../../../server/processing/replay.js';
import { createProcessContext } from '../../../server/processing/context.js';
import { readActivityBindings } from '../../../server/processing/read-entities.js';
import { PausedError } from '../../../server/lib/retry-errors.js';
import { restWaitMs } from '../../../server/queue/destinations.js';

/** The deal tab a manager (not an admin) reads in the deal card. */
describe('the deal tab a manager reads', () => {
  let h: UiHarness;
  let ruManager: UiSession;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  beforeAll(async () => {
    // Contact events too: a contact and a deal may share an id.
    h = await startUiHarness({
      env: { B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMCONTACTADD' },
    });
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

  it("links to the log of this deal's events only, not of a contact with the same id", async () => {
    const contact = await h.portal.addContact({ NAME: 'Anna', LAST_NAME: 'Petrova' });
    await h.drain();
    const contactEvent = await h.t.deps
      .db('events')
      .where({ entity_type: 'contact', entity_id: contact.id })
      .first('id');
    expect(contactEvent).toBeDefined();
    const deal = await h.t.deps
      .db('events')
      .where({ entity_type: 'deal', entity_id: contact.id })
      .first('id');
    expect(deal).toBeDefined();
    const card = await getPage(h, `/ui/deal/${contact.id}`, ruManager.cookie);
    const link = /href="([^"]*\/ui\/events\?[^"]*)"/.exec(card.html)?.[1]?.replace(/&amp;/g, '&');
    expect(link).toBeDefined();
    const log = await getPage(h, link!, ruManager.cookie);
    const ids = [...log.html.matchAll(/<tr data-id="(\d+)"/g)].map((m) => Number(m[1]));
    expect(ids).toContain(Number(deal.id));
    expect(ids).not.toContain(Number(contactEvent.id));
    // The filter stays on the page, so a change of another filter keeps it.
    expect(log.html).toMatch(/<option value="deal" selected>/);
  });

  it('greys the events no rule was for, so what ran stands out', async () => {
    const card = await getPage(h, `/ui/deal/${deals.won}`, ruManager.cookie);
    const rows = [...card.html.matchAll(/<tr data-id="(\d+)"( class="quiet")?>/g)];
    expect(rows).toHaveLength(2);
    // Its creation matched no rule: grey; its win ran the invoice: as it was.
    const status = async (id: string) =>
      (await h.t.deps
        .db('events')
        .where({ id: Number(id) })
        .first('status', 'last_error')) as {
        status: string;
        last_error: string | null;
      };
    for (const [, id, quiet] of rows) {
      const ev = await status(id!);
      expect([ev.status, ev.last_error, Boolean(quiet)]).toEqual(
        ev.status === 'skipped' ? ['skipped', 'no rule matched', true] : ['processed', null, false],
      );
    }
  });

  it('says that a deal has no events yet, or that its events were erased on request, and when', async () => {
    const none = await getPage(h, '/ui/deal/777001', ruManager.cookie);
    expect(none.html).toContain('По этой сделке событий пока нет.');
    const at = h.t.clock.now().getTime();
    await seedDealEvent(h.t.deps.db, h.portal.memberId, {
      dealId: '777002',
      status: 'processed',
      lastError: '',
      job: { status: 'done', lastError: '', runAt: at },
      at,
    });
    const portal = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    await eraseEntityData(h.t.deps, portal, { type: 'deal', id: '777002' });
    const erased = await getPage(h, '/ui/deal/777002', ruManager.cookie);
    // Before, an erased deal read like a quiet one: "no events yet".
    expect(erased.html).toMatch(
      /id="no-events"[^>]*data-erased="\d+">События этой сделки удалены по запросу /,
    );
    expect(erased.html).not.toContain('событий пока нет');
  });

  it('says that older events of a deal with 10,000 of them are in the log, and links there', async () => {
    const db = h.t.deps.db;
    const portal = await db('portals').where({ member_id: h.portal.memberId }).first('id');
    const dealId = '777';
    const at = h.t.clock.now().getTime();
    const rows = Array.from({ length: 10_000 }, () => ({
      portal_id: portal.id,
      member_id: h.portal.memberId,
      event: 'ONCRMDEALUPDATE',
      entity_type: 'deal',
      entity_id: dealId,
      body: `{"event":"ONCRMDEALUPDATE","data":{"FIELDS":{"ID":"${dealId}"}}}`,
      status: 'processed',
      received_at: at,
      processed_at: at,
    }));
    for (let i = 0; i < rows.length; i += 500) await db('events').insert(rows.slice(i, i + 500));
    const started = Date.now();
    const card = await getPage(h, `/ui/deal/${dealId}`, ruManager.cookie);
    expect(Date.now() - started).toBeLessThan(2_000);
    const shown = [...card.html.matchAll(/<tr data-id="(\d+)"/g)].map((m) => Number(m[1]));
    expect(shown).toHaveLength(100);
    expect(card.html).toContain('Показаны последние 100 событий сделки.');
    const older = /id="older-events"/.test(card.html)
      ? /href="([^"]*)" id="older-events"/.exec(card.html)![1]!.replace(/&amp;/g, '&')
      : '';
    expect(older).not.toBe('');
    const log = await getPage(h, older, ruManager.cookie);
    const next = [...log.html.matchAll(/<tr data-id="(\d+)"/g)].map((m) => Number(m[1]));
    expect(next[0]).toBe(Math.min(...shown) - 1);
  });

  it('keeps a right-to-left override in a rule or step name inside that name', async () => {
    const db = h.t.deps.db;
    const at = h.t.clock.now().getTime();
    const eventId = await seedDealEvent(db, h.portal.memberId, {
      dealId: '890',
      status: 'processed',
      lastError: '',
      job: { status: 'done', lastError: '', runAt: at },
      at,
    });
    // An admin's rule name with an unclosed U+202E: without isolation it reverses the rest of
    // the line (the step's name and the status badge).
    await db('action_runs').insert({
      event_id: eventId,
      rule_name: 'Paid \u202Edeal',
      step_index: 0,
      step_name: 'in\u202Evoice',
      action_type: 'http',
      idempotency_key: `bidi-${eventId}`,
      status: 'succeeded',
      attempts: 1,
      started_at: at,
      finished_at: at,
    });
    const card = await getPage(h, '/ui/deal/890', ruManager.cookie);
    // The rule's name once above its steps, and with each step for a screen reader.
    expect(card.html).toContain(
      '<div class="run-rule" aria-hidden="true"><bdi translate="no">Paid \u202Edeal</bdi></div>',
    );
    expect(card.html).toContain(
      '<bdi translate="no">Paid \u202Edeal</bdi> · </span><bdi translate="no">in\u202Evoice</bdi>',
    );
    const ev = await getPage(h, `/ui/events/${eventId}`, ruManager.cookie);
    expect(ev.html).toContain('<bdi>Paid \u202Edeal</bdi>');
    expect(ev.html).toContain('<bdi translate="no">in\u202Evoice</bdi>');
  });

  it('cuts a long error in whole characters and shows that it was cut', async () => {
    const db = h.t.deps.db;
    const portal = await db('portals').where({ member_id: h.portal.memberId }).first('id');
    const at = h.t.clock.now().getTime();
    await db('events').insert({
      portal_id: portal.id,
      member_id: h.portal.memberId,
      event: 'ONCRMDEALUPDATE',
      entity_type: 'deal',
      entity_id: '888',
      body: '{"event":"ONCRMDEALUPDATE","data":{"FIELDS":{"ID":"888"}}}',
      status: 'failed',
      last_error: `${'A'.repeat(99)}\u{1F600} and the rest of the remote answer`,
      received_at: at,
      processed_at: at,
    });
    const card = await getPage(h, '/ui/deal/888', ruManager.cookie);
    expect(card.html).not.toContain('\uFFFD');
    expect(card.html).toContain(`${'A'.repeat(99)}…`);
    const log = await getPage(h, '/ui/events?etype=deal&entity=888', ruManager.cookie);
    expect(log.html).toContain(`${'A'.repeat(99)}\u{1F600} and the rest of th…`);
  });

  it('refuses a deal tab whose AUTH_ID the portal does not confirm in the language Bitrix24 names', async () => {
    const { url, init } = frameRequest(h, {
      userId: 2,
      lang: 'ru',
      path: '/placement/deal-tab',
      placement: 'CRM_DEAL_DETAIL_TAB',
      placementOptions: { ID: deals.won },
      authId: 'not-a-token-of-this-portal',
    });
    const res = await fetch(url, init);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toContain('charset=utf-8');
    expect(await res.text()).toBe(
      'Портал не подтвердил авторизацию. Откройте приложение заново.\n',
    );
  });

  it('says when an event waiting after a failed attempt is tried next', async () => {
    const db = h.t.deps.db;
    const at = h.t.clock.now().getTime();
    await seedDealEvent(db, h.portal.memberId, {
      dealId: '889',
      status: 'received',
      lastError: 'Won deal: invoice / invoice: HTTP 503 from POST https://erp.example/api: busy',
      job: { status: 'pending', lastError: 'HTTP 503', runAt: at + 20 * 60_000 },
      at,
    });
    const card = await getPage(h, '/ui/deal/889', ruManager.cookie);
    expect(card.html).toMatch(
      /class="next-attempt">Эта попытка не удалась; следующая — \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/,
    );
    // Its badge says that it is being retried: "received" read as a new, untouched event.
    expect(card.html).toContain(
      '<span class="badge b-received" data-retrying="1">повторяется</span>',
    );
    expect(card.html).not.toContain('>получено<');
    // A job that waits for a destination that is down sent nothing: no attempt failed.
    const paused = await seedDealEvent(db, h.portal.memberId, {
      dealId: '888',
      status: 'received',
      lastError:
        'Won deal: invoice / destination erp.example is down (circuit open after 5 failures)',
      job: { status: 'pending', lastError: 'down', runAt: at + 60_000 },
      at,
    });
    await db('jobs').where({ event_id: paused }).update({ waiting_for: 'http:erp.example#1' });
    const waiting = await getPage(h, '/ui/deal/888', ruManager.cookie);
    expect(waiting.html).toMatch(
      /class="next-attempt">Ещё не отправлено: получатель недоступен; следующая попытка — \d{4}/,
    );
    expect(waiting.html).not.toContain('Эта попытка не удалась');
  });

  it('says the step an event retries will be retried, not that it failed', async () => {
    const db = h.t.deps.db;
    const at = h.t.clock.now().getTime();
    const seed = (dealId: string, status: string) =>
      seedDealEvent(db, h.portal.memberId, {
        dealId,
        status,
        lastError: 'Won deal: erp / erp: HTTP 503 from POST https://erp.example/api: busy',
        job: {
          status: status === 'failed' ? 'failed' : 'pending',
          lastError: 'HTTP 503',
          runAt: at + 60_000,
        },
        at,
      });
    const run = (eventId: number, stepIndex: number, name: string | null, status: string) =>
      recordActionRun(db, {
        event_id: eventId,
        rule_name: 'Won deal',
        step_index: stepIndex,
        step_name: name,
        action_type: 'http',
        idempotency_key: `${eventId}:${stepIndex}`,
        status: status as 'failed',
        request_summary: null,
        response_summary: null,
        output: null,
        error: status === 'failed' ? 'HTTP 503' : null,
        started_at: at,
        finished_at: at,
        generation: 0,
      });
    const retrying = await seed('893', 'received');
    await run(retrying, 0, 'invoice', 'succeeded');
    await run(retrying, 1, 'erp', 'failed');
    const card = await getPage(h, '/ui/deal/893', ruManager.cookie);
    // Two steps of one rule: its name once above them (a walk found it beside every step).
    expect(card.html.match(/class="run-rule"/g)).toHaveLength(1);
    expect(card.html.match(/class="run"/g)).toHaveLength(2);
    const runs = card.html.slice(card.html.indexOf('class="run"'));
    expect(runs).toMatch(
      /erp<\/bdi><\/span> <span class="badge b-received" data-retrying="1">ошибка, будет повтор<\/span>/,
    );
    expect(runs).toMatch(/invoice<\/bdi><\/span>\s*<span class="badge b-succeeded"/);
    // A step without a name is called by its kind in the manager's words, not its code.
    const unnamed = await seed('895', 'processed');
    await run(unnamed, 0, null, 'succeeded');
    const plain = await getPage(h, '/ui/deal/895', ruManager.cookie);
    expect(plain.html).toMatch(/Won deal<\/bdi> · <\/span>HTTP-запрос<\/span>/);
    // Control: a step of an event that failed for good says failed.
    const failed = await seed('894', 'failed');
    await run(failed, 0, 'erp', 'failed');
    const gone = await getPage(h, '/ui/deal/894', ruManager.cookie);
    expect(gone.html).toMatch(/erp<\/bdi><\/span>\s*<span class="badge b-failed"/);
    expect(gone.html).not.toContain('будет повтор');
    // Failed for good: the manager is told who can retry it.
    expect(gone.html).toContain(
      '<div class="failed-hint">Само оно больше не повторится: сообщите администратору портала',
    );
    // An admin is led to the event, where it is retried.
    const admin = await openSession(h, {
      path: '/placement/deal-tab',
      placement: 'CRM_DEAL_DETAIL_TAB',
    });
    const own = await getPage(h, '/ui/deal/894', admin.cookie);
    expect(own.html).toMatch(
      new RegExp(
        `<div class="failed-hint"><a href="/ui/events/${failed}[^"]*">Open the event to see why and retry it</a>`,
      ),
    );
  });

  it("says what each event means in the manager's language, with its code beside it", async () => {
    const db = h.t.deps.db;
    const at = h.t.clock.now().getTime();
    await seedDealEvent(db, h.portal.memberId, {
      dealId: '891',
      status: 'processed',
      lastError: '',
      job: { status: 'done', lastError: '', runAt: at },
      at,
    });
    const card = await getPage(h, '/ui/deal/891', ruManager.cookie);
    expect(card.html).toMatch(
      /<td>Изменена сделка<div class="muted event-code" translate="no">ONCRM<wbr>DEAL<wbr>UPDATE<\/div><\/td>/,
    );
    const en = await openSession(h, {
      userId: 2,
      path: '/placement/deal-tab',
      placement: 'CRM_DEAL_DETAIL_TAB',
    });
    expect((await getPage(h, '/ui/deal/891', en.cookie)).html).toContain(
      '<td>A deal was changed<div',
    );
  });

  it('says that a retry whose time has passed is due, not a time in the past', async () => {
    const db = h.t.deps.db;
    const at = h.t.clock.now().getTime();
    await seedDealEvent(db, h.portal.memberId, {
      dealId: '890',
      status: 'received',
      lastError: 'Won deal: invoice / invoice: HTTP 503 from POST https://erp.example/api: busy',
      job: { status: 'pending', lastError: 'HTTP 503', runAt: at - 60_000 },
      at: at - 120_000,
    });
    const card = await getPage(h, '/ui/deal/890', ruManager.cookie);
    expect(card.html).toContain(
      'class="next-attempt">Эта попытка не удалась; следующая уже в очереди',
    );
    expect(card.html).not.toMatch(/следующая — \d{4}/);
  });

  it("says in Russian why a deal's events ran nothing, keeping the rule names as written", async () => {
    await h.portal.updateDeal(deals.fresh, { STAGE_ID: 'PREPARATION' });
    await h.drain();
    const card = await getPage(h, `/ui/deal/${deals.fresh}`, ruManager.cookie);
    expect(card.status).toBe(200);
    expect(card.html).not.toContain('no rule');
    expect(card.html).toContain('ни одно правило не подошло');
    expect(card.html).toContain('нет правил для запуска (Won deal: invoice: Стадия = ');
    const log = await getPage(h, `/ui/events?entity=${deals.fresh}`, ruManager.cookie);
    expect(log.html).not.toContain('no rule');
    expect(log.html).toContain('ни одно правило не подошло');
  });
});

/**
 * A call or a task made in a deal is the deal's business as well: the manager reading the
 * deal card saw nothing of a rule that ran on it (an activity event names only itself).
 */
describe('the deal tab lists the events of records made in the deal', () => {
  let h: UiHarness;
  let manager: UiSession;
  beforeAll(async () => {
    h = await startUiHarness({
      env: {
        B24_EVENTS:
          'ONCRMDEALADD,ONCRMACTIVITYADD,ONCRMACTIVITYUPDATE,ONCRMACTIVITYDELETE,ONTASKADD,ONTASKUPDATE,ONTASKDELETE,ONCRMDYNAMICITEMADD,ONCRMDYNAMICITEMADD_128',
      },
    });
    manager = await openSession(h, {
      userId: 2,
      path: '/placement/deal-tab',
      placement: 'CRM_DEAL_DETAIL_TAB',
    });
  });
  afterAll(async () => {
    await h.close();
  });

  const rowsOf = (html: string) =>
    [...html.matchAll(/<tr data-id="(\d+)"[^>]*>([\s\S]*?)<\/tr>/g)].map((m) => ({
      id: Number(m[1]),
      record: /class="linked-record">([^<]*)</.exec(m[2]!)?.[1] ?? null,
    }));
  const eventOf = async (type: string, id: string, name: string) =>
    Number(
      (
        await h.t.deps
          .db('events')
          .where({ entity_type: type, entity_id: id, event: name })
          .first('id')
      ).id,
    );

  it('shows a call made in the deal, its change and its deletion, and a task bound to it', async () => {
    const deal = await h.portal.addDeal({ TITLE: 'Call me' });
    const other = await h.portal.addDeal({ TITLE: 'Another deal' });
    const call = await h.portal.addActivity({
      OWNER_TYPE_ID: 2,
      OWNER_ID: deal.id,
      TYPE_ID: 2,
      SUBJECT: 'About the invoice',
    });
    // Control: a call in the other deal, and one in a contact with the deal's id.
    const elsewhere = await h.portal.addActivity({
      OWNER_TYPE_ID: 2,
      OWNER_ID: other.id,
      TYPE_ID: 2,
    });
    const contactCall = await h.portal.addActivity({
      OWNER_TYPE_ID: 3,
      OWNER_ID: deal.id,
      TYPE_ID: 2,
    });
    const task = await h.portal.addTask({
      TITLE: 'Send the contract',
      UF_CRM_TASK: [`D_${deal.id}`],
    });
    await h.drain();
    await h.portal.updateActivity(call.id, { SUBJECT: 'About the invoice, again' });
    await h.drain();
    // Deleted: the delete event names only the ID, and keeps the deal the call was in.
    await h.portal.deleteActivity(call.id);
    await h.drain();

    const dealAdd = await eventOf('deal', deal.id, 'ONCRMDEALADD');
    const callAdd = await eventOf('activity', call.id, 'ONCRMACTIVITYADD');
    const callUpdate = await eventOf('activity', call.id, 'ONCRMACTIVITYUPDATE');
    const callDelete = await eventOf('activity', call.id, 'ONCRMACTIVITYDELETE');
    const taskAdd = await eventOf('task', String(task.id), 'ONTASKADD');
    const card = await getPage(h, `/ui/deal/${deal.id}`, manager.cookie);
    expect(rowsOf(card.html)).toEqual([
      { id: callDelete, record: `Activity ${call.id}` },
      { id: callUpdate, record: `Activity ${call.id}` },
      { id: taskAdd, record: `Task ${task.id}` },
      { id: callAdd, record: `Activity ${call.id}` },
      { id: dealAdd, record: null },
    ]);
    // Not offered on the subscriptions page, but named in the manager's words all the same,
    // and on the subscriptions page where it is bound (through B24_EVENTS).
    expect(card.html).toContain('<td>An activity was deleted<div class="muted event-code"');
    const admin = await openSession(h);
    const subs = await getPage(h, '/ui/subscriptions', admin.cookie);
    expect(subs.html).toMatch(/ONCRMACTIVITYDELETE[\s\S]{0,400}An activity was deleted/);
    // The tab's link to the log shows what the tab shows (a walk found only the deal's own
    // event there), as does its CSV; without `linked`, the deal's own events only.
    const link = /id="deal-log" href="([^"]*)"|href="([^"]*)" id="deal-log"/
      .exec(card.html)!
      .slice(1)
      .find(Boolean)!
      .replace(/&amp;/g, '&');
    const logIds = async (path: string) =>
      [...(await getPage(h, path, manager.cookie)).html.matchAll(/<tr data-id="(\d+)"/g)].map((m) =>
        Number(m[1]),
      );
    expect(await logIds(link)).toEqual([callDelete, callUpdate, taskAdd, callAdd, dealAdd]);
    expect(await logIds(link.replace('linked=1', 'linked=0'))).toEqual([dealAdd]);
    const csv = await getPage(h, link.replace('/ui/events?', '/ui/events.csv?'), manager.cookie);
    expect(csv.html.trim().split('\n')).toHaveLength(1 + 5);
    const otherCard = await getPage(h, `/ui/deal/${other.id}`, manager.cookie);
    const otherIds = rowsOf(otherCard.html).map((r) => r.id);
    expect(otherIds).toContain(await eventOf('activity', elsewhere.id, 'ONCRMACTIVITYADD'));
    expect(otherIds).not.toContain(callAdd);
    expect(rowsOf(card.html).map((r) => r.id)).not.toContain(
      await eventOf('activity', contactCall.id, 'ONCRMACTIVITYADD'),
    );
  });

  /**
   * A client's call is owned by the client's contact and bound to the deal in progress (as
   * telephony binds it; crm.activity.get names the owner only): the tab did not list it.
   */
  it('lists a call owned by the client and bound to the deal, its bindings read in the same batch', async () => {
    const deal = await h.portal.addDeal({ TITLE: 'Client calls in' });
    const other = await h.portal.addDeal({ TITLE: 'Not this one' });
    await h.drain();
    const call = await h.portal.addActivity({
      OWNER_TYPE_ID: 3,
      OWNER_ID: '901',
      TYPE_ID: 2,
      SUBJECT: 'Incoming call',
    });
    await h.portal.bindActivity(call.id, 2, deal.id);
    const before = h.portal.calls.length;
    await h.drain();
    const callAdd = await eventOf('activity', call.id, 'ONCRMACTIVITYADD');
    const callUpdate = await eventOf('activity', call.id, 'ONCRMACTIVITYUPDATE');
    expect((await linksOf(callAdd)).sort()).toEqual(['contact:901', `deal:${deal.id}`].sort());
    const card = await getPage(h, `/ui/deal/${deal.id}`, manager.cookie);
    const ids = rowsOf(card.html).map((r) => r.id);
    expect(ids).toEqual(expect.arrayContaining([callAdd, callUpdate]));
    const otherCard = await getPage(h, `/ui/deal/${other.id}`, manager.cookie);
    expect(rowsOf(otherCard.html).map((r) => r.id)).not.toContain(callAdd);
    // No request of their own: read beside the activity, in its batch.
    const made = h.portal.calls.slice(before);
    expect(made.filter((c) => !c.inBatch).map((c) => c.method)).toEqual(['batch']);
    expect(made.filter((c) => c.inBatch).map((c) => c.method)).toEqual([
      'crm.activity.get',
      'crm.activity.binding.list',
    ]);
  });

  const linksOf = async (eventId: number) =>
    (await h.t.deps.db('event_owners').where('event_id', eventId).orderBy('owner_id')).map(
      (r: { owner_type: string; owner_id: string }) => `${r.owner_type}:${r.owner_id}`,
    );

  it("lists an item made from the deal (parentId2), its type's own event named like the general one", async () => {
    const deal = await h.portal.addDeal({ TITLE: 'With a project' });
    const item = await h.portal.addItem(128, { title: 'Project', parentId2: Number(deal.id) });
    await h.drain();
    const card = await getPage(h, `/ui/deal/${deal.id}`, manager.cookie);
    const rows = rowsOf(card.html);
    expect(rows.filter((r) => r.record === `Item ${item.id}`)).toHaveLength(2);
    expect(card.html).not.toMatch(/<span translate="no">ONCRM<wbr>DYNAMIC/);
    expect(card.html.match(/<td>An item was created<div/g)).toHaveLength(2);
  });

  // The three below found in review.
  it('links a call to its owner when its bindings are refused, with no request of their own', async () => {
    const deal = await h.portal.addDeal({ TITLE: 'Bindings refused' });
    await h.drain();
    // A portal that refuses the method (an old self-hosted one, a user without access).
    h.portal.failNext('crm.activity.binding.list', {
      status: 403,
      error: 'ACCESS_DENIED',
      description: 'Access denied.',
    });
    const call = await h.portal.addActivity({ OWNER_TYPE_ID: 2, OWNER_ID: deal.id, TYPE_ID: 2 });
    const before = h.portal.calls.length;
    await h.drain();
    const add = await eventOf('activity', call.id, 'ONCRMACTIVITYADD');
    expect(await linksOf(add)).toEqual([`deal:${deal.id}`]);
    const status = (await h.t.deps.db('events').where({ id: add }).first('status')).status;
    expect(status).not.toBe('failed');
    const made = h.portal.calls.slice(before);
    expect(made.filter((c) => !c.inBatch).map((c) => c.method)).toEqual(['batch']);
    // Control: the refusal was met, inside the batch.
    expect(
      made
        .filter((c) => c.inBatch && c.method === 'crm.activity.binding.list')
        .map((c) => c.status),
    ).toEqual([403]);
  });

  it("waits for the portal's REST budget rather than linking a call without its bindings", async () => {
    const deal = await h.portal.addDeal({ TITLE: 'Budget held' });
    const call = await h.portal.addActivity({ OWNER_TYPE_ID: 3, OWNER_ID: '77', TYPE_ID: 2 });
    await h.portal.bindActivity(call.id, 2, deal.id);
    const portal = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    // A retry reads alone (no read-ahead brought the bindings), with the budget held.
    const ctx = createProcessContext(h.t.deps);
    const event = { id: 1, received_at: 0, entity_id: call.id };
    const limiter = h.t.deps.bitrix.limiter;
    limiter.setLimits(portal.member_id, { drainPerSec: 0.01, burst: 1 });
    try {
      // Full: one request in it (unless the harness's own requests already filled it).
      if (restWaitMs(limiter, portal.member_id) === 0) await limiter.acquire(portal.member_id);
      await expect(readActivityBindings(ctx, event, portal)).rejects.toBeInstanceOf(PausedError);
    } finally {
      limiter.setLimits(portal.member_id, undefined);
    }
    // Control: with room, the same read answers them.
    await expect(readActivityBindings(ctx, event, portal)).resolves.toEqual([
      { entityTypeId: 3, entityId: 77 },
      { entityTypeId: 2, entityId: Number(deal.id) },
    ]);
    await h.drain();
  });

  it('keeps a replayed event in the deal it was made in, not the one its record is in now', async () => {
    const a = await h.portal.addDeal({ TITLE: 'A' });
    const b = await h.portal.addDeal({ TITLE: 'B' });
    const call = await h.portal.addActivity({ OWNER_TYPE_ID: 2, OWNER_ID: a.id, TYPE_ID: 2 });
    await h.drain();
    const add = await eventOf('activity', call.id, 'ONCRMACTIVITYADD');
    expect(await linksOf(add)).toEqual([`deal:${a.id}`]);
    // Bound to deal B as well (as a client's call is bound to the deal in progress).
    await h.portal.bindActivity(call.id, 2, b.id);
    await h.drain();
    // Control: the change itself is both deals'.
    expect(
      (await linksOf(await eventOf('activity', call.id, 'ONCRMACTIVITYUPDATE'))).sort(),
    ).toEqual([`deal:${a.id}`, `deal:${b.id}`].sort());
    const portal = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    expect(
      (await replayEvents(h.t.deps, { filter: { portalId: portal.id, ids: [add] } })).queued,
    ).toBe(1);
    await h.drain();
    expect(await linksOf(add)).toEqual([`deal:${a.id}`]);
  });

  it("shows a task's deletion in no deal once it was unbound from its deal", async () => {
    const d = await h.portal.addDeal({ TITLE: 'T' });
    const task = await h.portal.addTask({ TITLE: 'x', UF_CRM_TASK: [`D_${d.id}`] });
    await h.drain();
    await h.portal.updateTask(task.id, { UF_CRM_TASK: [] });
    await h.drain();
    await h.portal.emit('ONTASKDELETE', {
      FIELDS_BEFORE: { ID: String(task.id) },
      FIELDS_AFTER: 'undefined',
      IS_ACCESSIBLE_BEFORE: 'undefined',
      IS_ACCESSIBLE_AFTER: 'N',
    });
    await h.drain();
    expect(await linksOf(await eventOf('task', String(task.id), 'ONTASKADD'))).toEqual([
      `deal:${d.id}`,
    ]);
    expect(await linksOf(await eventOf('task', String(task.id), 'ONTASKDELETE'))).toEqual([]);
  });

  it("forgets a deal's links when the deal's data is erased, and prunes them with their events", async () => {
    const deal = await h.portal.addDeal({ TITLE: 'Erase me' });
    const call = await h.portal.addActivity({ OWNER_TYPE_ID: 2, OWNER_ID: deal.id, TYPE_ID: 2 });
    await h.drain();
    const links = () =>
      h.t.deps.db('event_owners').where({ owner_type: 'deal', owner_id: deal.id });
    expect(await links()).toHaveLength(1);
    const portal = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    await eraseEntityData(h.t.deps, portal, { type: 'deal', id: deal.id });
    expect(await links()).toHaveLength(0);
    const card = await getPage(h, `/ui/deal/${deal.id}`, manager.cookie);
    expect(card.html).toContain('id="no-events"');
    // The call's own event stays (it is the call's data, not the deal's).
    const callEvent = await eventOf('activity', call.id, 'ONCRMACTIVITYADD');
    expect(callEvent).toBeGreaterThan(0);

    // Pruned (or erased with its portal): an event goes with its links, in one transaction.
    const other = await h.portal.addDeal({ TITLE: 'Pruned' });
    const later = await h.portal.addActivity({ OWNER_TYPE_ID: 2, OWNER_ID: other.id, TYPE_ID: 2 });
    await h.drain();
    const laterEvent = await eventOf('activity', later.id, 'ONCRMACTIVITYADD');
    const db = h.t.deps.db;
    expect(await db('event_owners').where('event_id', laterEvent)).toHaveLength(1);
    const counts = await db.transaction((trx) => deleteEvents(trx, [laterEvent]));
    expect(counts).toMatchObject({ events: 1, event_owners: 1 });
    expect(rowsOf((await getPage(h, `/ui/deal/${other.id}`, manager.cookie)).html)).toHaveLength(1);
  });

  // Last: the failures it queues may outlast it.
  it('shows in the deal an event of its call that failed because the call could not be read', async () => {
    const d = await h.portal.addDeal({ TITLE: 'Unreadable call' });
    const call = await h.portal.addActivity({ OWNER_TYPE_ID: 2, OWNER_ID: d.id, TYPE_ID: 2 });
    await h.drain();
    h.portal.failNext(
      'crm.activity.get',
      { status: 400, error: 'ACCESS_DENIED', description: 'Access denied.' },
      10,
    );
    await h.portal.updateActivity(call.id, { SUBJECT: 'Hidden now' });
    await h.drain();
    const update = await eventOf('activity', call.id, 'ONCRMACTIVITYUPDATE');
    expect((await h.t.deps.db('events').where('id', update).first('status')).status).toBe('failed');
    expect(await linksOf(update)).toEqual([`deal:${d.id}`]);
    const card = await getPage(h, `/ui/deal/${d.id}`, manager.cookie);
    expect(rowsOf(card.html).map((r) => r.id)).toContain(update);
  });
});
