import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import qs from 'qs';
import {
  startEmulator,
  type BitrixEmulator,
  type EmulatedPortal,
} from '../emulator/bitrix-emulator.js';
import { startRecordingReceiver, type RecordingReceiver } from '../emulator/recording-receiver.js';
import { callRest } from '../helpers/emulator-rest.js';

/**
 * crm.quote.* and the old crm.invoice.* of the emulated portal, over HTTP: the answers the
 * worker's reads get (server/processing/entity-reader.ts) and the events a change sends.
 * Sources: CORE crm classes/general/restservice.php `CCrmQuoteRestProxy`, crm classes/general/
 * restservice_invoice.php `CCrmInvoiceRestService` (test/emulator/rest-quote-invoice.ts).
 */

describe('quotes and old invoices on the emulated portal', () => {
  let emu: BitrixEmulator;
  let portal: EmulatedPortal;
  let admin: string;
  let receiver: RecordingReceiver;
  const call = (method: string, params: object = {}) =>
    callRest(portal.clientEndpoint, method, params, admin);
  /** The events delivered to `path` since `from`, as `[event, FIELDS.ID]`. */
  const delivered = (path: string, from = 0) =>
    receiver.requests
      .slice(from)
      .filter((r) => r.path === path)
      .map((r) => {
        const b = qs.parse(r.body) as { event: string; data: { FIELDS: { ID: string } } };
        return [b.event, b.data.FIELDS.ID];
      });
  const invoiceFields = {
    ORDER_TOPIC: 'Invoice for the website',
    STATUS_ID: 'N',
    PERSON_TYPE_ID: 1,
    PAY_SYSTEM_ID: 2,
    UF_COMPANY_ID: 5,
    UF_DEAL_ID: 10,
    PRODUCT_ROWS: [
      { PRODUCT_ID: 0, PRODUCT_NAME: 'Design', PRICE: 400, QUANTITY: 2 },
      { PRODUCT_ID: 0, PRODUCT_NAME: 'Hosting', PRICE: 50, QUANTITY: 1 },
    ],
  };

  beforeAll(async () => {
    emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret' });
    portal = await emu.addPortal({ installed: true });
    receiver = await startRecordingReceiver();
    admin = portal.issueUserAuth(1).accessToken;
  });

  afterAll(async () => {
    await emu.close();
    await receiver.close();
  });

  it('keeps quotes: add, get, update and delete, each firing its ONCRMQUOTE event with FIELDS[ID]', async () => {
    const handler = `${receiver.url}/quotes`;
    for (const event of ['ONCRMQUOTEADD', 'ONCRMQUOTEUPDATE', 'ONCRMQUOTEDELETE']) {
      expect((await call('event.bind', { event, handler })).json.result).toBe(true);
    }
    const added = await call('crm.quote.add', {
      fields: { TITLE: 'Website redesign', OPPORTUNITY: 900, DEAL_ID: 10, COMPANY_ID: 5 },
    });
    const id = String(added.json.result);
    expect(typeof added.json.result).toBe('number');
    const got = (await call('crm.quote.get', { id })).json.result as Record<string, unknown>;
    expect(got).toMatchObject({
      ID: id,
      TITLE: 'Website redesign',
      STATUS_ID: 'DRAFT',
      OPPORTUNITY: '900.00',
      CURRENCY_ID: 'USD',
      DEAL_ID: '10',
      COMPANY_ID: '5',
    });
    expect(got['DATE_MODIFY']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/);
    expect((await call('crm.quote.update', { id, fields: { STATUS_ID: 'SENT' } })).json).toEqual(
      expect.objectContaining({ result: true }),
    );
    expect((await call('crm.quote.get', { id })).json.result).toMatchObject({ STATUS_ID: 'SENT' });
    const listed = await call('crm.quote.list', { filter: { STATUS_ID: 'SENT' }, select: ['ID'] });
    expect(listed.json.result).toEqual([{ ID: id }]);
    expect((await call('crm.quote.delete', { id })).json.result).toBe(true);
    await portal.whenIdle();
    expect(delivered('/quotes')).toEqual([
      ['ONCRMQUOTEADD', id],
      ['ONCRMQUOTEUPDATE', id],
      ['ONCRMQUOTEDELETE', id],
    ]);
  });

  it('answers a missing quote as the core does: get "Not found", update "Quote is not found"', async () => {
    const get = await call('crm.quote.get', { id: 4242 });
    expect([get.status, get.json]).toEqual([400, { error: '', error_description: 'Not found' }]);
    const update = await call('crm.quote.update', { id: 4242, fields: { TITLE: 'x' } });
    expect(update.json).toEqual({ error: '', error_description: 'Quote is not found' });
    const bad = await call('crm.quote.get', { id: 'abc' });
    expect(bad.json.error_description).toBe('ID is not defined or invalid.');
  });

  it('keeps old invoices: add answers the ID, get has PRICE from the rows and UF_ links, update and delete answer the ID', async () => {
    const added = await call('crm.invoice.add', { fields: { ...invoiceFields, PRICE: 1 } });
    expect(added.status).toBe(200);
    const id = String(added.json.result);
    const got = (await call('crm.invoice.get', { id })).json.result as Record<string, unknown>;
    expect(got).toMatchObject({
      ID: id,
      ORDER_TOPIC: 'Invoice for the website',
      STATUS_ID: 'N',
      PRICE: '850.00',
      PAYED: 'N',
      UF_DEAL_ID: '10',
      UF_COMPANY_ID: '5',
    });
    expect(got['PRODUCT_ROWS']).toHaveLength(2);
    expect(got).not.toHaveProperty('DATE_MODIFY');
    expect(got['DATE_UPDATE']).toMatch(/^\d{4}-\d\d-\d\dT/);
    const paid = await call('crm.invoice.update', { id, fields: { STATUS_ID: 'P' } });
    expect(paid.json.result).toBe(Number(id));
    expect((await call('crm.invoice.get', { id })).json.result).toMatchObject({
      STATUS_ID: 'P',
      PAYED: 'Y',
      ORDER_TOPIC: 'Invoice for the website',
    });
    // The list leaves out the product rows, and ID when it is not selected; newest first.
    const second = String((await call('crm.invoice.add', { fields: invoiceFields })).json.result);
    const listed = await call('crm.invoice.list', { select: ['ID', 'PRICE'] });
    expect(listed.json.result).toEqual([
      { ID: second, PRICE: '850.00' },
      { ID: id, PRICE: '850.00' },
    ]);
    expect((await call('crm.invoice.list', { select: ['ORDER_TOPIC'] })).json.result).toEqual([
      { ORDER_TOPIC: 'Invoice for the website' },
      { ORDER_TOPIC: 'Invoice for the website' },
    ]);
    expect((await call('crm.invoice.delete', { id: second })).json.result).toBe(Number(second));
  });

  it('answers a missing invoice with "Not found." and refuses an invoice without products or payer', async () => {
    const get = await call('crm.invoice.get', { id: 4242 });
    expect([get.status, get.json]).toEqual([400, { error: '', error_description: 'Not found.' }]);
    const update = await call('crm.invoice.update', { id: 4242, fields: { STATUS_ID: 'P' } });
    expect(update.json.error_description).toBe('Not found.');
    expect((await call('crm.invoice.update', { id: 0, fields: {} })).json.error_description).toBe(
      'Invalid identifier.',
    );
    expect((await call('crm.invoice.add', { fields: {} })).json.error_description).toBe(
      'Invalid parameters.',
    );
    const bare = await call('crm.invoice.add', {
      fields: { ORDER_TOPIC: 'No rows', STATUS_ID: 'N' },
    });
    expect(bare.status).toBe(400);
    expect(bare.json.error).toBe('');
    expect(bare.json.error_description).toMatch(/<br \/>\n$/);
  });

  it('sends ONCRMINVOICESETSTATUS with every add and update, and ONCRMINVOICEDELETE on delete', async () => {
    const handler = `${receiver.url}/invoices`;
    for (const event of [
      'ONCRMINVOICEADD',
      'ONCRMINVOICEUPDATE',
      'ONCRMINVOICEDELETE',
      'ONCRMINVOICESETSTATUS',
    ]) {
      expect((await call('event.bind', { event, handler })).json.result).toBe(true);
    }
    const from = receiver.requests.length;
    const id = String((await call('crm.invoice.add', { fields: invoiceFields })).json.result);
    await portal.whenIdle();
    await call('crm.invoice.update', { id, fields: { COMMENTS: 'status unchanged' } });
    await portal.whenIdle();
    await call('crm.invoice.delete', { id });
    await portal.whenIdle();
    const events = delivered('/invoices', from);
    expect(events.map(([, i]) => i)).toEqual([id, id, id, id, id]);
    expect(events.map(([e]) => e).sort()).toEqual(
      [
        'ONCRMINVOICEADD',
        'ONCRMINVOICESETSTATUS',
        'ONCRMINVOICEUPDATE',
        'ONCRMINVOICESETSTATUS',
        'ONCRMINVOICEDELETE',
      ].sort(),
    );
  });

  it('describes the fields: an invoice field has type, size, isRequired, isReadOnly and title only', async () => {
    const inv = (await call('crm.invoice.fields')).json.result as Record<string, object>;
    expect(inv['PRICE']).toEqual({
      type: 'double',
      size: '18,2',
      isRequired: false,
      isReadOnly: true,
      title: 'Amount',
    });
    expect(inv['ORDER_TOPIC']).toMatchObject({ isRequired: true, size: '255' });
    // No statusType: the status is a string of one letter (`getFieldsInfo`).
    expect(inv['STATUS_ID']).toEqual({
      type: 'string',
      size: '1',
      isRequired: true,
      isReadOnly: false,
      title: 'Status',
    });
    expect(inv['PRODUCT_ROWS']).toMatchObject({
      type: 'iarray',
      definition: { row: { QUANTITY: { type: 'double', size: '18,2' } } },
    });
    const quote = (await call('crm.quote.fields')).json.result as Record<string, object>;
    expect(quote['STATUS_ID']).toMatchObject({ type: 'crm_status', statusType: 'QUOTE_STATUS' });
    expect(quote['TITLE']).toMatchObject({ isRequired: true, isImmutable: false });
  });
});
