import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createMetadataCache } from '../../server/rules/metadata.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';

describe("the rule builder's metadata, read from the portal and cached", () => {
  let h: UiHarness;
  const batches = () => h.portal.calls.filter((c) => c.method === 'batch').length;

  beforeAll(async () => {
    h = await startUiHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  const portalRow = async () => (await h.t.deps.portals.get(h.portal.memberId))!;

  it('reads fields (user fields by their labels), pipelines, stages and users', async () => {
    const cache = createMetadataCache(h.t.deps.bitrix, { now: () => 1_000 });
    const before = batches();
    const m = await cache.get(await portalRow());
    // One batch for fields, pipelines, users and the general stages; one for the second
    // pipeline's stages.
    expect(batches() - before).toBe(2);
    expect(m.missing).toEqual([]);
    const stage = m.entities.deal.find((f) => f.code === 'STAGE_ID');
    expect(stage).toMatchObject({ title: 'Deal Stage', type: 'crm_status' });
    expect(m.entities.deal.find((f) => f.code === 'UF_CRM_DELIVERY')).toMatchObject({
      title: 'Delivery method',
      type: 'enumeration',
      items: [
        { id: '45', value: 'Courier' },
        { id: '46', value: 'Pickup' },
      ],
    });
    expect(m.entities.contact.find((f) => f.code === 'PHONE')).toMatchObject({ multiple: true });
    expect(m.categories).toEqual([
      { id: 0, name: 'General', isDefault: true },
      { id: 1, name: 'Wholesale', isDefault: false },
    ]);
    expect(m.stages.find((s) => s.id === 'WON')).toEqual({
      id: 'WON',
      name: 'Deal successful',
      categoryId: 0,
      semantics: 'S',
    });
    expect(m.stages.find((s) => s.id === 'C1:WON')).toMatchObject({ categoryId: 1 });
    // Activities: their fields (crm.activity.fields), in the same batch.
    expect(m.entities.activity.find((f) => f.code === 'PROVIDER_TYPE_ID')).toMatchObject({
      title: 'Provider Type',
      type: 'string',
    });
    expect(m.entities.activity.map((f) => f.code)).toEqual(
      expect.arrayContaining(['SUBJECT', 'COMPLETED', 'OWNER_ID', 'RESPONSIBLE_ID']),
    );
    // Quotes and old invoices: their fields (crm.quote.fields, crm.invoice.fields), in the
    // same batch, no request of their own.
    for (const method of ['crm.quote.fields', 'crm.invoice.fields']) {
      expect(h.portal.calls.filter((c) => c.method === method).at(-1)).toMatchObject({
        inBatch: true,
        status: 200,
      });
    }
    // The old invoice's answer is its own service's: no statusType, no isMultiple,
    // and UF_DEAL_ID / UF_COMPANY_ID are built-in fields, kept in the core's order.
    expect(m.entities.quote.find((f) => f.code === 'STATUS_ID')).toMatchObject({
      title: 'Status',
      type: 'crm_status',
      statusType: 'QUOTE_STATUS',
    });
    expect(m.entities.quote.find((f) => f.code === 'CONTACT_IDS')).toMatchObject({
      multiple: true,
    });
    expect(m.entities.invoice.find((f) => f.code === 'PRICE')).toEqual({
      code: 'PRICE',
      title: 'Amount',
      type: 'double',
      multiple: false,
      readOnly: true,
    });
    const invoiceCodes = m.entities.invoice.map((f) => f.code);
    expect(invoiceCodes).toEqual(
      expect.arrayContaining(['ORDER_TOPIC', 'STATUS_ID', 'PAYED', 'PRODUCT_ROWS']),
    );
    expect(invoiceCodes.indexOf('UF_DEAL_ID')).toBeLessThan(
      invoiceCodes.indexOf('USER_DESCRIPTION'),
    );
    // Leads: their fields, and their stages from the status list STATUS, in order.
    expect(m.entities.lead.find((f) => f.code === 'STATUS_ID')).toMatchObject({
      title: 'Stage',
      statusType: 'STATUS',
    });
    expect(m.leadStages.map((s) => [s.id, s.semantics])).toEqual([
      ['NEW', 'P'],
      ['IN_PROCESS', 'P'],
      ['PROCESSED', 'P'],
      ['CONVERTED', 'S'],
      ['JUNK', 'F'],
    ]);
    expect(m.users.length).toBeGreaterThan(0);
  });

  it('reads the quote and old invoice statuses in the same first batch, and types the invoice fields as documented', async () => {
    const cache = createMetadataCache(h.t.deps.bitrix, { now: () => 2_000 });
    const before = batches();
    const m = await cache.get(await portalRow());
    expect(batches() - before).toBe(2);
    const lists = h.portal.calls
      .slice(-40)
      .filter((c) => c.method === 'crm.status.list' && c.inBatch)
      .map((c) => (c.params as { filter?: { ENTITY_ID?: string } }).filter?.ENTITY_ID);
    expect(lists).toEqual(expect.arrayContaining(['QUOTE_STATUS', 'INVOICE_STATUS']));
    expect(m.quoteStatuses.map((s) => [s.id, s.name, s.semantics])).toEqual([
      ['DRAFT', 'Draft', 'P'],
      ['SENT', 'Sent', 'P'],
      ['APPROVED', 'Approved', 'S'],
      ['DECLAINED', 'Declined', 'F'],
      ['APOLOGY', 'Failure analysis', 'F'],
    ]);
    expect(m.invoiceStatuses.map((s) => [s.id, s.name])).toEqual([
      ['N', 'New'],
      ['S', 'Sent'],
      ['P', 'Paid'],
      ['D', 'Declined'],
    ]);
    // crm.invoice.fields says `string` / `integer` (its own service's answer); the fields
    // page's types make the builder offer the statuses, Y/N and the users.
    const invoice = (code: string) => m.entities.invoice.find((f) => f.code === code);
    expect(invoice('STATUS_ID')).toMatchObject({
      title: 'Status',
      type: 'crm_status',
      statusType: 'INVOICE_STATUS',
    });
    expect(invoice('PAYED')).toMatchObject({ title: 'Paid', type: 'char', readOnly: true });
    for (const code of ['RESPONSIBLE_ID', 'CREATED_BY', 'EMP_STATUS_ID', 'EMP_PAYED_ID']) {
      expect(invoice(code)).toMatchObject({ type: 'user' });
    }
    expect(invoice('PAY_SYSTEM_ID')).toMatchObject({ type: 'integer' });
  });

  it('reads the rest when a portal refuses crm.invoice.fields (old invoices off): that command alone fails', async () => {
    const cache = createMetadataCache(h.t.deps.bitrix, { now: () => 3_000 });
    const before = batches();
    h.portal.failNext('crm.invoice.fields', {
      status: 404,
      error: 'ERROR_METHOD_NOT_FOUND',
      description: 'Method not found!',
    });
    const m = await cache.get(await portalRow());
    expect(batches() - before).toBe(2);
    const failed = h.portal.calls.filter((c) => c.method === 'crm.invoice.fields').at(-1);
    expect(failed).toMatchObject({ inBatch: true, error: 'ERROR_METHOD_NOT_FOUND' });
    expect(m.missing).toEqual(['invoice']);
    expect(m.entities.invoice).toEqual([]);
    expect(m.entities.quote.length).toBeGreaterThan(0);
    expect(m.entities.deal.length).toBeGreaterThan(0);
    expect(m.stages.length).toBeGreaterThan(0);
    expect(m.users.length).toBeGreaterThan(0);
  });

  it('a stampede of loads makes one load; after the TTL the next load reads again', async () => {
    let now = 5_000;
    const cache = createMetadataCache(h.t.deps.bitrix, { now: () => now, ttlMs: 60_000 });
    const portal = await portalRow();
    const before = batches();
    const all = await Promise.all(Array.from({ length: 20 }, () => cache.get(portal)));
    expect(new Set(all).size).toBe(1);
    expect(batches() - before).toBe(2);
    now += 59_000;
    await cache.get(portal);
    expect(batches() - before).toBe(2);
    now += 2_000;
    await cache.get(portal);
    expect(batches() - before).toBe(4);
  });

  it("reads a smart process's fields, pipelines and stages once per TTL", async () => {
    const cache = createMetadataCache(h.t.deps.bitrix, { now: () => 9_000 });
    const portal = await portalRow();
    const before = batches();
    const [m] = await Promise.all([
      cache.item(portal, 128),
      cache.item(portal, 128),
      cache.item(portal, 128),
    ]);
    // One load: a batch for the fields and pipelines, one for the pipelines' stages.
    expect(batches() - before).toBe(2);
    const fields = m!.fields;
    expect(fields.find((f) => f.code === 'stageId')).toMatchObject({ title: 'Stage' });
    expect(fields.find((f) => f.code === 'ufCrm128_1747309727')).toMatchObject({
      title: 'Priority',
      items: [
        { id: '61', value: 'High' },
        { id: '62', value: 'Low' },
      ],
    });
    expect(m!.missing).toEqual([]);
    expect(m!.categories.map((c) => c.id)).toEqual([1280, 1281]);
    expect(m!.stages.find((s) => s.id === 'DT128_1281:SUCCESS')).toEqual({
      id: 'DT128_1281:SUCCESS',
      name: 'Success',
      categoryId: 1281,
      semantics: 'S',
    });
    // Another smart process is its own entry: its own load.
    await cache.item(portal, 130);
    expect(batches() - before).toBe(4);
  });

  it('keeps no failed load: the next page asks the portal again', async () => {
    const cache = createMetadataCache(h.t.deps.bitrix, { now: () => 20_000 });
    const portal = await portalRow();
    h.portal.failNext('batch', { status: 403, error: 'ACCESS_DENIED', description: 'no' });
    await expect(cache.get(portal)).rejects.toThrow();
    const m = await cache.get(portal);
    expect(m.stages.length).toBeGreaterThan(0);
  });
});
