import { afterEach, describe, expect, it } from '@jest/globals';
import type { Action, EventMap, Rule } from '../../server/rules/model.js';
import { eventRows, invoiceFields } from '../helpers/record-rules.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * The loop guard on old invoices: a rule's crm.invoice.update (or add) comes back as
 * ONCRMINVOICESETSTATUS and then ONCRMINVOICEUPDATE (ADD), both for one write: CCrmInvoice::Add
 * (behind Update too) calls SetStatus whenever a status is given, and REST update carries the
 * current status over (CORE crm classes/general/crm_invoice.php `CCrmInvoice::Add`;
 * restservice_invoice.php `CCrmInvoiceRestService::update`). The emulator sends both
 * (test/emulator/rest-quote-invoice.ts `invoiceEvents`).
 */

/** An invoice crm.invoice.add takes, paid for by contact 3. */
const invoiceOf = (more: Record<string, unknown> = {}) =>
  invoiceFields({ UF_CONTACT_ID: 3, ...more });

const ALL_EVENTS = 'ONCRMINVOICEADD,ONCRMINVOICEUPDATE,ONCRMINVOICESETSTATUS';

/** A rule that stamps a paid invoice's comments, on `on`: its write comes back as an echo. */
const stampPaid = (on: string): EventMap => ({
  rules: [
    {
      name: 'Stamp paid invoices',
      on: [on],
      when: [{ field: 'STATUS_ID', equals: 'P' }],
      actions: [
        {
          type: 'bitrix',
          method: 'crm.invoice.update',
          params: { id: '{{invoice.ID}}', fields: { COMMENTS: 'paid, stamped by b24hooks' } },
        },
      ],
    },
  ],
});

let s: PaidDealScenario;
afterEach(async () => {
  await s?.close();
});

const callsOf = (method: string) => s.portal.calls.filter((c) => c.method === method);
const statuses = async (like: string) =>
  (await eventRows(s.h.t.deps.db, like)).map((e) => [e.status, e.last_error]);

/**
 * An invoice added (with `more` fields), then paid by a person, then `rounds` rounds for the
 * echoes to come.
 */
async function payThenEchoes(rounds: number, more: Record<string, unknown> = {}): Promise<string> {
  const invoice = await s.portal.addInvoice(invoiceOf(more));
  await s.drain();
  s.shiftPortalTime(2000);
  await s.portal.updateInvoice(invoice.id, { STATUS_ID: 'P' });
  for (let i = 0; i < rounds; i++) {
    s.shiftPortalTime(2000);
    await s.drain();
  }
  return invoice.id;
}

describe('loop guard on old invoices', () => {
  it('does not let a rule on ONCRMINVOICEUPDATE re-trigger itself by updating the invoice', async () => {
    s = await startPaidDealScenario(() => stampPaid('ONCRMINVOICEUPDATE'), {
      B24_EVENTS: ALL_EVENTS,
    });
    await payThenEchoes(4);
    expect(callsOf('crm.invoice.update')).toHaveLength(1);
    // The person's change runs the rule; its echo is skipped, and so is the status event
    // that came with it (no rule listens), without taking the update's remembered write.
    expect(await statuses('ONCRMINVOICEUPDATE')).toEqual([
      ['processed', null],
      ['skipped', expect.stringMatching(/loop guard: this change was made by the rule itself/)],
    ]);
    expect((await statuses('ONCRMINVOICESETSTATUS')).map(([status]) => status)).toEqual([
      'skipped',
      'skipped',
      'skipped',
    ]);
    const writes = await s.h.t.deps.db('own_writes').select('entity_type', 'consumed_by_event_id');
    expect(writes.map((w) => w.entity_type)).toEqual(['invoice', 'invoice']);
    expect(writes.every((w) => w.consumed_by_event_id !== null)).toBe(true);
  });

  it('does not loop on an invoice that already carries the stamp: an old invoice echoes every update', async () => {
    // Saved and its events sent even when nothing changed (CCrmInvoice, no item factory):
    // a write taken for one that changes nothing was not remembered, and each echo ran the
    // rule again, for ever (review of the no-change loop guard).
    s = await startPaidDealScenario(() => stampPaid('ONCRMINVOICEUPDATE'), {
      B24_EVENTS: ALL_EVENTS,
    });
    await payThenEchoes(6, { COMMENTS: 'paid, stamped by b24hooks' });
    expect(callsOf('crm.invoice.update')).toHaveLength(1);
    expect((await statuses('ONCRMINVOICEUPDATE')).map(([status]) => status)).toEqual([
      'processed',
      'skipped',
    ]);
  });

  it('does not let a rule on ONCRMINVOICESETSTATUS re-trigger itself by updating the invoice', async () => {
    s = await startPaidDealScenario(() => stampPaid('ONCRMINVOICESETSTATUS'), {
      B24_EVENTS: ALL_EVENTS,
    });
    await payThenEchoes(4);
    expect(callsOf('crm.invoice.update')).toHaveLength(1);
    expect(await statuses('ONCRMINVOICESETSTATUS')).toEqual([
      ['skipped', expect.stringMatching(/^no rule to run/)],
      ['processed', null],
      ['skipped', expect.stringMatching(/loop guard: this change was made by the rule itself/)],
    ]);
  });

  it('runs the rule again on a person’s later change, when ONCRMINVOICESETSTATUS is not bound', async () => {
    // Unbound, the status event never comes: a write remembered for it would be taken by the
    // next change a person makes, which would then pass for the rule's own.
    s = await startPaidDealScenario(() => stampPaid('ONCRMINVOICEUPDATE'), {
      B24_EVENTS: 'ONCRMINVOICEADD,ONCRMINVOICEUPDATE',
    });
    const id = await payThenEchoes(3);
    expect(callsOf('crm.invoice.update')).toHaveLength(1);
    await s.portal.updateInvoice(id, { COMMENTS: 'paid by wire, see the bank statement' });
    for (let i = 0; i < 3; i++) {
      s.shiftPortalTime(2000);
      await s.drain();
    }
    expect(callsOf('crm.invoice.update')).toHaveLength(2);
    expect((await statuses('ONCRMINVOICEUPDATE')).map(([status]) => status)).toEqual([
      'processed',
      'skipped',
      'processed',
      'skipped',
    ]);
  });

  it('does not let a rule on ONCRMINVOICEADD start itself again on each invoice it adds', async () => {
    const copy: Action = {
      type: 'bitrix',
      method: 'crm.invoice.add',
      params: { fields: invoiceOf({ ORDER_TOPIC: 'Copy of {{invoice.ORDER_TOPIC}}' }) },
    };
    const rule: Rule = { name: 'Copy each new invoice', on: ['ONCRMINVOICEADD'], actions: [copy] };
    s = await startPaidDealScenario(() => ({ rules: [rule] }), { B24_EVENTS: ALL_EVENTS });
    await s.portal.addInvoice(invoiceOf());
    for (let i = 0; i < 4; i++) {
      s.shiftPortalTime(2000);
      await s.drain();
    }
    // The copy's ADD is the echo of the rule's own add (the new ID is in its answer).
    expect(callsOf('crm.invoice.add')).toHaveLength(1);
    expect(await statuses('ONCRMINVOICEADD')).toEqual([
      ['processed', null],
      ['skipped', expect.stringMatching(/loop guard: this change was made by the rule itself/)],
    ]);
  });
});

describe('loop guard on a write whose event the portal does not bind', () => {
  /**
   * A deal the rule adds echoes as ONCRMDEALADD, which this portal does not bind: the write
   * was remembered all the same, no echo took it, and a person's change of the new deal a
   * minute later was taken for the rule's own ("loop guard: this change was made by the rule
   * itself"): the rule did not run. (Found in review.)
   */
  it('runs the rule on a person’s change of the deal the rule created', async () => {
    s = await startPaidDealScenario(
      (): EventMap => ({
        rules: [
          {
            name: 'Won deal: open a follow-up deal',
            on: ['ONCRMDEALUPDATE'],
            when: [{ field: 'STAGE_ID', equals: 'WON' }],
            actions: [
              {
                type: 'bitrix',
                method: 'crm.deal.add',
                params: { fields: { TITLE: 'Follow-up of {{deal.ID}}', STAGE_ID: 'NEW' } },
              },
            ],
          },
        ],
      }),
      { B24_EVENTS: 'ONCRMDEALUPDATE' },
    );
    expect(s.portal.bindings.map((b) => b.event)).not.toContain('ONCRMDEALADD');
    const first = await s.portal.addDeal({ TITLE: 'First', STAGE_ID: 'NEW' });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateDeal(first.id, { STAGE_ID: 'WON' });
    for (let i = 0; i < 3; i++) {
      s.shiftPortalTime(2000);
      await s.drain();
    }
    expect(callsOf('crm.deal.add')).toHaveLength(1);
    expect(await s.h.t.deps.db('own_writes')).toHaveLength(0);
    const followUp = [...s.portal.deals.values()].find((d) =>
      String(d.TITLE).startsWith('Follow-up'),
    )!;
    s.shiftPortalTime(60_000);
    await s.portal.updateDeal(String(followUp.ID), { STAGE_ID: 'WON' });
    for (let i = 0; i < 3; i++) {
      s.shiftPortalTime(2000);
      await s.drain();
    }
    expect(callsOf('crm.deal.add')).toHaveLength(2);
  });
});
