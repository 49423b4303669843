import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { replayEvents } from '../../server/processing/replay.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

describe('the Paid-deal scenario end to end', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario();
  });
  afterEach(async () => {
    await s.close();
  });

  async function wonDeal() {
    const contact = await s.portal.addContact({
      NAME: 'Ann',
      PHONE: [{ VALUE: '+15550001111', VALUE_TYPE: 'WORK' }],
    });
    const deal = await s.portal.addDeal({
      TITLE: 'Order 1',
      STAGE_ID: 'NEW',
      OPPORTUNITY: '1500.00',
      CONTACT_ID: contact.id,
    });
    await s.drain();
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await s.drain();
    return deal.id;
  }
  const events = () => s.h.t.deps.db('events').where('event', 'like', 'ONCRMDEAL%').orderBy('id');

  it('creates the invoice, the shipment, the SMS and the timeline comment exactly once', async () => {
    const dealId = await wonDeal();
    expect(s.accounting.requests).toHaveLength(1);
    expect(JSON.parse(s.accounting.requests[0]!.body)).toEqual({ dealId, amount: '1500.00' });
    expect(s.accounting.requests[0]!.headers['idempotency-key']).toMatch(/^b24h-/);
    expect(s.logistics.requests).toHaveLength(1);
    expect(s.sms.requests).toHaveLength(1);
    expect(JSON.parse(s.sms.requests[0]!.body)).toMatchObject({
      to: '+15550001111',
      text: `Payment received for order ${dealId}`,
    });
    const invoiceRun = await s.h.t.deps.db('action_runs').where({ step_name: 'invoice' }).first();
    const invoiceId = JSON.parse(invoiceRun.output).response.id as string;
    expect(invoiceId).toMatch(/^INV-/);
    const comments = s.portal.timeline.filter((c) => c.ENTITY_ID === dealId);
    expect(comments).toHaveLength(1);
    expect(JSON.stringify(comments[0])).toContain(`Invoice ${invoiceId} created`);
    const rows = await events();
    expect(rows.map((e) => [e.event, e.status])).toEqual([
      ['ONCRMDEALADD', 'skipped'],
      ['ONCRMDEALUPDATE', 'processed'],
    ]);
    const runs = await s.h.t.deps.db('action_runs').orderBy('id');
    expect(runs.map((r) => [r.step_name, r.status])).toEqual([
      ['invoice', 'succeeded'],
      ['shipment', 'succeeded'],
      ['sms', 'succeeded'],
      ['comment', 'succeeded'],
    ]);
  });

  it('runs nothing again when the same delivery arrives three times', async () => {
    await wonDeal();
    const delivery = s.portal.deliveries.find((d) => d.event === 'ONCRMDEALUPDATE');
    for (let i = 0; i < 2; i++) {
      const res = await fetch(delivery!.handler, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: delivery!.body,
      });
      expect(await res.json()).toEqual({ ok: true, duplicate: true });
    }
    await s.drain();
    expect([
      s.accounting.requests.length,
      s.logistics.requests.length,
      s.sms.requests.length,
    ]).toEqual([1, 1, 1]);
    expect((await events()).find((e) => e.event === 'ONCRMDEALUPDATE').duplicates).toBe(2);
  });

  it('runs nothing again on a replay, and everything again with --rerun-succeeded under new idempotency keys', async () => {
    await wonDeal();
    const range = { from: 0, to: s.h.t.clock.now().getTime() + 1 };
    const r = await replayEvents(s.h.t.deps, { filter: range });
    expect(r.queued).toBe(2);
    await s.drain();
    expect([
      s.accounting.requests.length,
      s.logistics.requests.length,
      s.sms.requests.length,
    ]).toEqual([1, 1, 1]);
    expect(s.portal.timeline).toHaveLength(1);
    expect((await events()).map((e) => e.status)).toEqual(['skipped', 'processed']);

    await replayEvents(s.h.t.deps, {
      filter: { ...range, event: 'ONCRMDEALUPDATE' },
      rerunSucceeded: true,
    });
    await s.drain();
    expect([
      s.accounting.requests.length,
      s.logistics.requests.length,
      s.sms.requests.length,
    ]).toEqual([2, 2, 2]);
    const keys = s.accounting.requests.map((q) => q.headers['idempotency-key']);
    expect(new Set(keys).size).toBe(2);
  });

  it('detects NEW→WON as becomes but not WON→WON', async () => {
    const dealId = await wonDeal();
    // Bitrix24's ts has 1 s resolution: within one second the delivery would be identical.
    s.shiftPortalTime(1_000);
    await s.portal.updateDeal(dealId, { TITLE: 'Order 1 (paid)' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
    const last = (await events()).at(-1);
    expect(last).toMatchObject({ status: 'skipped' });
    expect(last.last_error).toMatch(/STAGE_ID/);
  });

  it('skips with the reason when the deal left WON before processing', async () => {
    const deal = await s.portal.addDeal({ TITLE: 'Order 2', STAGE_ID: 'NEW', OPPORTUNITY: '10' });
    await s.drain();
    // The two updates must fall in one second of the portal's clock: start them at the top
    // of a second (on a loaded machine they once straddled a second's end).
    s.shiftPortalTime(1000 - (s.portalNow() % 1000));
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'LOSE' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(0);
    // Both updates fall in one second, so Bitrix24's deliveries are identical: one event,
    // counted twice, processed on a fresh read that already shows LOSE.
    const rows = await events();
    expect(rows.map((e) => [e.event, e.status, e.duplicates])).toEqual([
      ['ONCRMDEALADD', 'skipped', 0],
      ['ONCRMDEALUPDATE', 'skipped', 1],
    ]);
    expect(rows.at(-1).last_error).toMatch(/STAGE_ID is "?LOSE/);
  });

  it('resumes a failed step on retry without repeating the earlier ones, even after the deal moved on; a fresh run skips a stale trigger', async () => {
    s.logistics.handle(() => ({ status: 503, body: { error: 'down' } }));
    const dealId = await wonDeal();
    expect(s.accounting.requests).toHaveLength(1);
    expect(s.logistics.requests).toHaveLength(1);
    const ev = (await events()).at(-1);
    expect(ev).toMatchObject({ status: 'received' });
    expect(ev.last_error).toMatch(/shipment.*503/);
    s.logistics.handle(() => ({ status: 200, body: { shipment: 'SHP-2' } }));
    s.h.t.clock.advance(60_000);
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
    expect(s.logistics.requests).toHaveLength(2);
    expect(s.sms.requests).toHaveLength(1);
    expect((await events()).at(-1)).toMatchObject({ status: 'processed' });

    // A second deal whose first step fails, then the deal leaves WON before the retry (an
    // admin fixes the cause and retries): the step was tried, so the rule is carried out.
    // Before, the retry re-checked the conditions and ended `skipped`, sending nothing.
    s.accounting.handle(() => ({ status: 500, body: {} }));
    const buyer = await s.portal.addContact({
      NAME: 'Bob',
      PHONE: [{ VALUE: '+15550002222', VALUE_TYPE: 'WORK' }],
    });
    const deal2 = await s.portal.addDeal({
      TITLE: 'Order 3',
      STAGE_ID: 'NEW',
      CONTACT_ID: buyer.id,
    });
    await s.drain();
    await s.portal.updateDeal(deal2.id, { STAGE_ID: 'WON' });
    await s.drain();
    await s.portal.updateDeal(deal2.id, { STAGE_ID: 'LOSE' }, { userId: 1 });
    s.accounting.handle(() => ({ status: 201, body: { id: 'INV-X' } }));
    s.h.t.clock.advance(60_000);
    await s.drain();
    const wonEvent = async () =>
      (
        await s.h.t.deps
          .db('events')
          .where({ entity_id: deal2.id, event: 'ONCRMDEALUPDATE' })
          .orderBy('id')
      )[0];
    expect((await wonEvent()).status).toBe('processed');
    const invoices2 = () =>
      s.accounting.requests.filter((q) => q.body.includes(`"${deal2.id}"`)).length;
    expect(invoices2()).toBe(2);
    // Run again from the start (a replay of succeeded steps) now that the deal is no longer
    // WON: nothing of that run was tried, so the conditions are checked again and it is
    // skipped as a stale trigger.
    const won = await wonEvent();
    await replayEvents(s.h.t.deps, {
      filter: { from: won.received_at, to: won.received_at + 1, event: 'ONCRMDEALUPDATE' },
      rerunSucceeded: true,
    });
    await s.drain();
    const replayed = await s.h.t.deps.db('events').where({ id: won.id }).first();
    expect(replayed.status).toBe('skipped');
    expect(replayed.last_error).toMatch(/stale trigger/);
    expect(invoices2()).toBe(2);
    expect(dealId).not.toBe(deal2.id);
  });
});
