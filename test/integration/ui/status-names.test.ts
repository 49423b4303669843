import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { saveRuleMap } from '../../../server/rules/map-store.js';
import { invoiceFields } from '../../helpers/record-rules.js';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui-client.js';

/**
 * A quote's and an old invoice's status codes (DECLAINED, P) named as the portal names them
 * (its lists QUOTE_STATUS and INVOICE_STATUS, read with the builder's metadata) on the rules
 * page and in the notes of the events those rules were judged on, as deal stages are.
 */
describe("quote and old invoice statuses by the portal's names", () => {
  let h: UiHarness;
  let en: UiSession;
  let ru: UiSession;
  const post = (path: string) => ({
    type: 'http' as const,
    method: 'POST' as const,
    url: `${h.sink.url}${path}`,
  });
  /** Text without tags, entities decoded, spaces collapsed. */
  const words = (html: string): string =>
    html
      .replace(/<[^>]+>/g, '')
      .replace(/&#34;/g, '"')
      .replace(/\s+/g, ' ');
  /** The latest stored event named `event`: its id and its note (the codes compared). */
  const latest = async (event: string) =>
    (await h.t.deps
      .db('events')
      .where({ event })
      .orderBy('id', 'desc')
      .first('id', 'last_error')) as {
      id: number;
      last_error: string;
    };

  beforeAll(async () => {
    // The portal's clock is the test's: an invoice's add and update each send
    // ONCRMINVOICESETSTATUS, and two in one second would be one identical delivery.
    h = await startUiHarness({
      sharedClock: true,
      env: {
        B24_EVENTS:
          'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMQUOTEADD,ONCRMQUOTEUPDATE,ONCRMINVOICEADD,ONCRMINVOICEUPDATE,ONCRMINVOICESETSTATUS',
      },
    });
    await saveRuleMap(
      h.t.deps.db,
      h.portal.memberId,
      {
        rules: [
          {
            name: 'Quote out',
            on: ['ONCRMQUOTEUPDATE'],
            when: [{ field: 'STATUS_ID', in: ['APPROVED', 'SENT'] }],
            actions: [post('/quotes')],
          },
          {
            name: 'Invoice paid',
            on: ['ONCRMINVOICESETSTATUS'],
            when: [{ field: 'STATUS_ID', becomes: 'P' }],
            actions: [post('/invoices')],
          },
        ],
      },
      h.t.clock.now(),
    );
    en = await openSession(h);
    ru = await openSession(h, { lang: 'ru' });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('describes the conditions with the status names, in English and Russian', async () => {
    const page = words((await getPage(h, '/ui/rules', en.cookie)).html);
    expect(page).toContain('Status is one of Approved, Sent');
    expect(page).toContain('Status becomes Paid');
    expect(page).not.toContain('Status is one of APPROVED');
    const ruPage = words((await getPage(h, '/ui/rules', ru.cookie)).html);
    expect(ruPage).toContain('Поле «Статус» — одно из: Approved, Sent');
    expect(ruPage).toContain('Поле «Статус» становится Paid');
  });

  it("names the statuses in a skipped quote's and invoice's notes", async () => {
    const quote = await h.portal.addQuote({ TITLE: 'Website' });
    await h.drain();
    await h.portal.updateQuote(quote.id, { STATUS_ID: 'DECLAINED' });
    await h.drain();
    const declined = await latest('ONCRMQUOTEUPDATE');
    // Control: the stored note holds the codes the evaluator compared.
    expect(declined.last_error).toContain(
      'STATUS_ID is "DECLAINED", not one of ["APPROVED","SENT"]',
    );
    const page = words((await getPage(h, `/ui/events/${declined.id}`, en.cookie)).html);
    expect(page).toContain('Status is "Declined", not one of ["Approved","Sent"]');

    const invoice = await h.portal.addInvoice(invoiceFields({ UF_CONTACT_ID: 1 }));
    await h.drain();
    h.t.clock.advance(2_000);
    await h.portal.updateInvoice(invoice.id, { STATUS_ID: 'S' });
    await h.drain();
    const sent = await latest('ONCRMINVOICESETSTATUS');
    expect(sent.last_error).toContain('STATUS_ID is "S", not "P"');
    const invoicePage = words((await getPage(h, `/ui/events/${sent.id}`, ru.cookie)).html);
    expect(invoicePage).toContain('Статус = "Sent", а не "Paid"');
  });
});
