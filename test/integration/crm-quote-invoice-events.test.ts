import { afterEach, describe, expect, it } from '@jest/globals';
import { eventRows, invoiceFields, postOn } from '../helpers/record-rules.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * Quotes and old invoices, end to end: their events carry only FIELDS[ID] (DOCS:api-reference/
 * crm/quote/events/on-crm-quote-update.md, crm/outdated/invoice/events-invoice/*) and the
 * worker reads the record with crm.quote.get / crm.invoice.get (server/processing/
 * entity-reader.ts). Until the emulator had them, nothing tested these reads.
 */

let s: PaidDealScenario;
afterEach(async () => {
  await s?.close();
});
const rowsOf = (like: string) => eventRows(s.h.t.deps.db, like);
/** Stores the portal's pending deliveries without running the worker. */
const storeOnly = async () => {
  await s.portal.whenIdle();
  await s.h.services.intake.drain();
};

describe('quote events (ONCRMQUOTEUPDATE; crm.quote.get)', () => {
  const start = () =>
    startPaidDealScenario(
      postOn(
        'Approved quote to the ERP',
        'ONCRMQUOTEUPDATE',
        [{ field: 'STATUS_ID', becomes: 'APPROVED' }],
        '/quotes',
        {
          quoteId: '{{quote.ID}}',
          title: '{{quote.TITLE}}',
          amount: '{{quote.OPPORTUNITY}}',
          dealId: '{{quote.DEAL_ID}}',
        },
      ),
      { B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMQUOTEADD,ONCRMQUOTEUPDATE' },
    );

  it('reads the quote and sends its fields once it becomes approved, and not before', async () => {
    s = await start();
    const deal = await s.portal.addDeal({ TITLE: 'Website' });
    const quote = await s.portal.addQuote({
      TITLE: 'Website, stage 1',
      OPPORTUNITY: 600,
      DEAL_ID: deal.id,
    });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateQuote(quote.id, { STATUS_ID: 'SENT' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(0);
    s.shiftPortalTime(2000);
    await s.portal.updateQuote(quote.id, { STATUS_ID: 'APPROVED' });
    await s.drain();
    expect(s.accounting.requests.map((r) => JSON.parse(r.body))).toEqual([
      { quoteId: quote.id, title: 'Website, stage 1', amount: '600.00', dealId: deal.id },
    ]);
    expect((await rowsOf('ONCRMQUOTE%')).map((e) => [e.event, e.entity_type, e.status])).toEqual([
      ['ONCRMQUOTEADD', 'quote', 'skipped'],
      ['ONCRMQUOTEUPDATE', 'quote', 'skipped'],
      ['ONCRMQUOTEUPDATE', 'quote', 'processed'],
    ]);
    expect(s.portal.calls.some((c) => c.method === 'crm.quote.get')).toBe(true);
  });

  it('skips the event of a quote deleted before it was read ("Not found"), instead of failing it', async () => {
    s = await start();
    const quote = await s.portal.addQuote({ TITLE: 'Short-lived' });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateQuote(quote.id, { STATUS_ID: 'APPROVED' });
    await storeOnly();
    await s.portal.deleteQuote(quote.id);
    await s.drain();
    const update = (await rowsOf('ONCRMQUOTEUPDATE')).at(-1);
    expect(update).toMatchObject({ entity_id: quote.id, status: 'skipped', attempts: 1 });
    expect(update!.last_error).toMatch(/quote \d+ no longer exists/);
    expect(s.accounting.requests).toHaveLength(0);
  });
});

describe('old invoice events (ONCRMINVOICEADD; crm.invoice.get)', () => {
  const start = () =>
    startPaidDealScenario(
      postOn('New invoice to accounting', 'ONCRMINVOICEADD', [], '/invoices', {
        invoiceId: '{{invoice.ID}}',
        topic: '{{invoice.ORDER_TOPIC}}',
        amount: '{{invoice.PRICE}}',
        status: '{{invoice.STATUS_ID}}',
        dealId: '{{invoice.UF_DEAL_ID}}',
      }),
      { B24_EVENTS: 'ONCRMDEALADD,ONCRMINVOICEADD,ONCRMINVOICESETSTATUS' },
    );

  it('reads the invoice and sends its topic, amount and deal', async () => {
    s = await start();
    const deal = await s.portal.addDeal({ TITLE: 'Website' });
    const invoice = await s.portal.addInvoice(
      invoiceFields({ UF_DEAL_ID: deal.id, UF_COMPANY_ID: 5 }),
    );
    await s.drain();
    expect(s.accounting.requests.map((r) => JSON.parse(r.body))).toEqual([
      {
        invoiceId: invoice.id,
        topic: 'Website, stage 1',
        amount: '600.00',
        status: 'N',
        dealId: deal.id,
      },
    ]);
    // The status event that comes with every add is stored as the invoice's too; no rule.
    const rows = await rowsOf('ONCRMINVOICE%');
    expect(rows.map((e) => [e.event, e.entity_type, e.entity_id, e.status]).sort()).toEqual([
      ['ONCRMINVOICEADD', 'invoice', invoice.id, 'processed'],
      ['ONCRMINVOICESETSTATUS', 'invoice', invoice.id, 'skipped'],
    ]);
    expect(s.portal.calls.some((c) => c.method === 'crm.invoice.get')).toBe(true);
  });

  it('skips the event of an invoice deleted before it was read ("Not found."), instead of failing it', async () => {
    s = await start();
    const invoice = await s.portal.addInvoice(invoiceFields({ UF_CONTACT_ID: 3 }));
    await storeOnly();
    await s.portal.deleteInvoice(invoice.id);
    await s.drain();
    const [added] = await rowsOf('ONCRMINVOICEADD');
    expect(added).toMatchObject({ entity_id: invoice.id, status: 'skipped', attempts: 1 });
    expect(added!.last_error).toMatch(/invoice \d+ no longer exists/);
    expect(s.accounting.requests).toHaveLength(0);
  });

  it('fills {{company.…}} and {{contact.…}} from the invoice’s UF_COMPANY_ID and UF_CONTACT_ID', async () => {
    // An old invoice names its payer in UF_COMPANY_ID / UF_CONTACT_ID, not COMPANY_ID /
    // CONTACT_ID (DOCS:api-reference/crm/outdated/invoice/crm-invoice-fields.md).
    s = await startPaidDealScenario(
      postOn('Invoice to the payer', 'ONCRMINVOICEADD', [], '/payers', {
        company: '{{company.TITLE}}',
        contact: '{{contact.NAME}}',
      }),
      { B24_EVENTS: 'ONCRMDEALADD,ONCRMINVOICEADD' },
    );
    const company = await s.portal.addCompany({ TITLE: 'Acme Ltd' });
    const contact = await s.portal.addContact({ NAME: 'Ann' });
    await s.portal.addInvoice(
      invoiceFields({ UF_COMPANY_ID: company.id, UF_CONTACT_ID: contact.id }),
    );
    await s.drain();
    expect(s.accounting.requests.map((r) => JSON.parse(r.body))).toEqual([
      { company: 'Acme Ltd', contact: 'Ann' },
    ]);
    expect((await rowsOf('ONCRMINVOICEADD')).map((e) => e.status)).toEqual(['processed']);
  });

  it('fails, not skips, the event when crm.invoice.get refuses the invoice ("Access denied.")', async () => {
    s = await start();
    s.portal.failNext(
      'crm.invoice.get',
      { status: 400, error: '', description: 'Access denied.' },
      5,
    );
    await s.portal.addInvoice(invoiceFields({ UF_CONTACT_ID: 3 }));
    await s.drain();
    const [added] = await rowsOf('ONCRMINVOICEADD');
    expect(added).toMatchObject({ status: 'failed' });
    expect(added!.last_error).toMatch(/Access denied/);
    expect(s.accounting.requests).toHaveLength(0);
  });
});

describe('old invoice status events (ONCRMINVOICESETSTATUS)', () => {
  const paid = (event: string) =>
    postOn(`Paid invoice (${event})`, event, [{ field: 'STATUS_ID', becomes: 'P' }], '/paid', {
      invoiceId: '{{invoice.ID}}',
      topic: '{{invoice.ORDER_TOPIC}}',
    });
  const ALL = 'ONCRMINVOICEADD,ONCRMINVOICEUPDATE,ONCRMINVOICESETSTATUS';
  /** An invoice added, then paid by a person; the rule's requests. */
  const addThenPay = async () => {
    const invoice = await s.portal.addInvoice(invoiceFields({ UF_CONTACT_ID: 3 }));
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateInvoice(invoice.id, { STATUS_ID: 'P' });
    await s.drain();
    return { id: invoice.id, sent: s.accounting.requests.map((r) => JSON.parse(r.body)) };
  };

  it('runs a rule on the status event with the invoice read, once it becomes paid', async () => {
    s = await startPaidDealScenario(paid('ONCRMINVOICESETSTATUS'), { B24_EVENTS: ALL });
    const { id, sent } = await addThenPay();
    expect(sent).toEqual([{ invoiceId: id, topic: 'Website, stage 1' }]);
    const rows = await rowsOf('ONCRMINVOICESETSTATUS');
    expect(rows.map((e) => [e.entity_type, e.entity_id, e.status])).toEqual([
      ['invoice', id, 'skipped'],
      ['invoice', id, 'processed'],
    ]);
  });

  it('still sees the status become paid on ONCRMINVOICEUPDATE, though the status event of the same change comes first', async () => {
    // The status event is of the same invoice, but a family of its own (transitions.ts
    // `eventFamily`): had it stored the new status, the update would see no change.
    s = await startPaidDealScenario(paid('ONCRMINVOICEUPDATE'), { B24_EVENTS: ALL });
    const { id, sent } = await addThenPay();
    expect(sent).toEqual([{ invoiceId: id, topic: 'Website, stage 1' }]);
    expect((await rowsOf('ONCRMINVOICEUPDATE')).map((e) => e.status)).toEqual(['processed']);
  });
});
