import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  startEmulator,
  type BitrixEmulator,
  type EmulatedPortal,
} from '../emulator/bitrix-emulator.js';

interface Answer {
  status: number;
  json: Record<string, unknown> & { result?: unknown; error?: string; total?: number };
}

describe('CRM metadata on the emulated portal (fields, stages, pipelines)', () => {
  let emu: BitrixEmulator;
  let portal: EmulatedPortal;
  let admin: string;

  const call = async (method: string, params: object = {}): Promise<Answer> => {
    const res = await fetch(`${portal.clientEndpoint}${method}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ...params, auth: admin }),
    });
    return { status: res.status, json: (await res.json()) as Answer['json'] };
  };

  beforeAll(async () => {
    emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret' });
    portal = await emu.addPortal({ installed: true });
    admin = portal.issueUserAuth(1).accessToken;
  });
  afterAll(async () => {
    await emu.close();
  });

  it('describes deal fields keyed by code, user fields with their labels and list items', async () => {
    const { status, json } = await call('crm.deal.fields');
    expect(status).toBe(200);
    const fields = json.result as Record<string, Record<string, unknown>>;
    expect(fields.STAGE_ID).toEqual({
      type: 'crm_status',
      isRequired: false,
      isReadOnly: false,
      isImmutable: false,
      isMultiple: false,
      isDynamic: false,
      statusType: 'DEAL_STAGE',
      title: 'Deal Stage',
    });
    expect(fields.ID).toMatchObject({ type: 'integer', isReadOnly: true });
    expect(fields.UF_CRM_DELIVERY).toMatchObject({
      type: 'enumeration',
      isDynamic: true,
      title: 'UF_CRM_DELIVERY',
      formLabel: 'Delivery method',
      listLabel: 'Delivery method',
      items: [
        { ID: '45', VALUE: 'Courier' },
        { ID: '46', VALUE: 'Pickup' },
      ],
    });
    const contact = (await call('crm.contact.fields')).json.result as Record<string, unknown>;
    expect(contact.PHONE).toMatchObject({ type: 'crm_multifield', isMultiple: true });
  });

  it("describes a smart process's fields in camelCase with upperName, under result.fields", async () => {
    const { json } = await call('crm.item.fields', { entityTypeId: 128 });
    const fields = (json.result as { fields: Record<string, Record<string, unknown>> }).fields;
    expect(fields.stageId).toMatchObject({
      type: 'crm_status',
      upperName: 'STAGE_ID',
      statusType: 'DYNAMIC_128_STAGE_1280',
    });
    // A field created in the portal's settings: UF_CRM_<type>_<timestamp>, and the
    // underscore between its two numeric blocks stays in the REST name.
    expect(fields.ufCrm128_1747309727).toMatchObject({
      type: 'enumeration',
      isDynamic: true,
      formLabel: 'Priority',
      upperName: 'UF_CRM_128_1747309727',
    });
    const deal = await call('crm.item.fields', { entityTypeId: 7 });
    expect([deal.status, deal.json.error]).toEqual([400, 'NOT_FOUND']);
  });

  it('lists stages by ENTITY_ID in SORT order, with total', async () => {
    const general = await call('crm.status.list', {
      order: { SORT: 'ASC' },
      filter: { ENTITY_ID: 'DEAL_STAGE' },
    });
    const rows = general.json.result as Array<Record<string, unknown>>;
    expect(rows.map((r) => r.STATUS_ID)).toEqual([
      'NEW',
      'PREPARATION',
      'PREPAYMENT_INVOICE',
      'EXECUTING',
      'FINAL_INVOICE',
      'WON',
      'LOSE',
      'APOLOGY',
    ]);
    expect(general.json.total).toBe(8);
    expect(rows[5]).toMatchObject({
      ENTITY_ID: 'DEAL_STAGE',
      NAME: 'Deal successful',
      SORT: '60',
      CATEGORY_ID: null,
      SEMANTICS: 'S',
    });
    const second = await call('crm.status.list', { filter: { ENTITY_ID: 'DEAL_STAGE_1' } });
    const ids = (second.json.result as Array<Record<string, unknown>>).map((r) => r.STATUS_ID);
    expect(ids).toContain('C1:WON');
    expect((second.json.result as Array<Record<string, unknown>>)[0]!.CATEGORY_ID).toBe('1');
  });

  it('lists the quote statuses and the old invoice statuses, the invoice ones without EXTRA', async () => {
    const list = async (entity: string) =>
      (
        await call('crm.status.list', {
          order: { SORT: 'ASC' },
          filter: { ENTITY_ID: entity },
        })
      ).json.result as Array<Record<string, unknown>>;
    const quote = await list('QUOTE_STATUS');
    expect(quote.map((r) => [r.STATUS_ID, r.SEMANTICS])).toEqual([
      ['DRAFT', null],
      ['SENT', null],
      ['APPROVED', 'S'],
      ['DECLAINED', 'F'],
      ['APOLOGY', 'F'],
    ]);
    expect(quote[2]).toMatchObject({
      ENTITY_ID: 'QUOTE_STATUS',
      NAME: 'Approved',
      SYSTEM: 'Y',
      CATEGORY_ID: null,
      EXTRA: { SEMANTICS: 'success', COLOR: '#7BD500' },
    });
    expect(quote[4]!.EXTRA).toMatchObject({ SEMANTICS: 'apology' });
    const invoice = await list('INVOICE_STATUS');
    expect(invoice.map((r) => [r.STATUS_ID, r.NAME, r.SEMANTICS])).toEqual([
      ['N', 'New', null],
      ['S', 'Sent', null],
      ['P', 'Paid', 'S'],
      ['D', 'Declined', 'F'],
    ]);
    expect(invoice.some((r) => 'EXTRA' in r)).toBe(false);
  });

  it('lists deal pipelines under result.categories, the default one marked', async () => {
    const { json } = await call('crm.category.list', { entityTypeId: 2 });
    const cats = (json.result as { categories: Array<Record<string, unknown>> }).categories;
    expect(cats.map((c) => [c.id, c.name, c.isDefault])).toEqual([
      [1, 'Wholesale', 'N'],
      [0, 'General', 'Y'],
    ]);
    const bad = await call('crm.category.list', { entityTypeId: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('NOT_FOUND');
  });

  it('answers the metadata inside a batch, as the app reads it', async () => {
    const { json } = await call('batch', {
      halt: 0,
      cmd: {
        fields: 'crm.deal.fields',
        cats: 'crm.category.list?entityTypeId=2',
        stages: 'crm.status.list?filter[ENTITY_ID]=DEAL_STAGE_1&order[SORT]=ASC',
      },
    });
    const r = (json.result as { result: Record<string, unknown> }).result;
    expect(Object.keys(r.fields as object)).toContain('OPPORTUNITY');
    expect((r.cats as { categories: unknown[] }).categories).toHaveLength(2);
    expect((r.stages as unknown[]).length).toBe(4);
  });
});
