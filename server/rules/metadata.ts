import type { BatchAnswer, BatchCommand } from '../bitrix/rest.js';
import type { PortalRow } from '../../db/stores/portals.js';

/**
 * What the rule builder offers in its pickers, read from the portal itself: the fields of
 * deals, leads, contacts, companies, activities, quotes and old invoices (user fields under the
 * names the admin gave them), the deal pipelines and their stages, the lead stages, the quote
 * and old invoice statuses, and the portal's users.
 *
 * Sources: crm.deal.fields / crm.lead.fields / crm.contact.fields / crm.company.fields /
 * crm.activity.fields / crm.quote.fields / crm.invoice.fields (see `toFields` for the old
 * invoice's answer)
 * (https://apidocs.bitrix24.com/api-reference/crm/deals/crm-deal-fields.html: an object keyed
 * by field code; a user field's `title` is its code and its names are `formLabel` /
 * `listLabel`, list fields carry `items`), crm.category.list with entityTypeId 2
 * (`result.categories[]`), crm.status.list with ENTITY_ID `DEAL_STAGE` for the general
 * pipeline, `DEAL_STAGE_<id>` for the others, `STATUS` for the lead stages, `QUOTE_STATUS` and
 * `INVOICE_STATUS` for the quote and old invoice statuses
 * (https://apidocs.bitrix24.com/api-reference/crm/status/crm-status-list.html; `STATUS` is the
 * statusType of a lead's STATUS_ID in crm.lead.fields, `QUOTE_STATUS` of a quote's in
 * crm.quote.fields, and the old invoice's fields page names `INVOICE_STATUS`).
 */

export interface FieldInfo {
  code: string;
  /** The name shown: a user field's form label, else the field's title. */
  title: string;
  type: string;
  multiple: boolean;
  readOnly: boolean;
  /** `crm_status` fields: which status list (`DEAL_STAGE`, `SOURCE`, …). */
  statusType?: string;
  /** `enumeration` user fields: the choices (value = the item's ID, as REST returns it). */
  items?: Array<{ id: string; value: string }>;
}

export interface StageInfo {
  /** STATUS_ID: `WON`, `C1:WON`. */
  id: string;
  name: string;
  categoryId: number;
  /** `S` success, `F` failure, `P` in progress. */
  semantics: 'S' | 'F' | 'P';
}

export interface PortalMetadata {
  entities: Record<
    'deal' | 'lead' | 'contact' | 'company' | 'activity' | 'quote' | 'invoice',
    FieldInfo[]
  >;
  categories: Array<{ id: number; name: string; isDefault: boolean }>;
  stages: StageInfo[];
  /** The lead stages (STATUS_ID of a lead), in their order; categoryId 0. */
  leadStages: StageInfo[];
  /** The quote statuses (STATUS_ID of a quote, the list QUOTE_STATUS), in their order. */
  quoteStatuses: StageInfo[];
  /** The old invoice statuses (STATUS_ID of an old invoice, INVOICE_STATUS), in their order. */
  invoiceStatuses: StageInfo[];
  users: Array<{ id: string; name: string }>;
  /** Commands that failed (e.g. a scope the app lacks): the builder still works without them. */
  missing: string[];
  loadedAt: number;
}

/** The one REST seam this needs: a batch call paced by the portal's budget (deps.bitrix). */
export interface MetadataSource {
  batch(portal: PortalRow, cmds: Readonly<Record<string, BatchCommand>>): Promise<BatchAnswer>;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const str = (v: unknown): string => (v === null || v === undefined ? '' : String(v));

/**
 * `crm.*.fields` → sorted field list (standard fields first, then user fields by name).
 *
 * The old invoice's `crm.invoice.fields` is its own service's answer (CORE crm classes/general/
 * restservice_invoice.php `CCrmInvoiceRestService::fields`, `makeFieldInfo`), not the common
 * CRM one (restservice.php `CCrmRestHelper::prepareFieldInfos`): its own fields carry only
 * `type`, `size`, `isRequired`, `isReadOnly` and a `title` (the caption, else the code), with
 * no isMultiple / isImmutable / isDynamic and no `statusType` (its STATUS_ID is a `string`),
 * PRODUCT_ROWS (`iarray`) and INVOICE_PROPERTIES (`aarray`) add a nested `definition`, and
 * UF_DEAL_ID, UF_CONTACT_ID, UF_COMPANY_ID… are built-in fields despite their prefix; its user
 * fields come in the common shape. Read here alike: a missing flag is false, `definition` is
 * not descended into (the builder offers the list itself, `{{invoice.PRODUCT_ROWS}}`), and a
 * user field is a `UF_` one whose entry says isDynamic (so UF_DEAL_ID stays among the
 * standard ones).
 */
export function toFields(raw: unknown): FieldInfo[] {
  if (!isObj(raw)) return [];
  const out: FieldInfo[] = [];
  const userFields = new Set<FieldInfo>();
  for (const [code, d] of Object.entries(raw)) {
    if (!isObj(d)) continue;
    const label = str(d.formLabel) || str(d.listLabel) || str(d.title) || code;
    const f: FieldInfo = {
      code,
      title: label,
      type: str(d.type) || 'string',
      multiple: d.isMultiple === true,
      readOnly: d.isReadOnly === true,
    };
    if (typeof d.statusType === 'string') f.statusType = d.statusType;
    if (Array.isArray(d.items)) {
      f.items = d.items
        .filter(isObj)
        .map((i) => ({ id: str(i.ID), value: str(i.VALUE) }))
        .filter((i) => i.id !== '');
    }
    out.push(f);
    // A user field is isDynamic (CORE crm classes/general/crm_usertype.php PrepareFieldsInfo);
    // the old invoice's own UF_DEAL_ID, UF_CONTACT_ID… say nothing of it.
    if (code.startsWith('UF_') && d.isDynamic === true) userFields.add(f);
  }
  const uf = (f: FieldInfo) => (userFields.has(f) ? 1 : 0);
  return out.sort((a, b) => uf(a) - uf(b) || (uf(a) ? a.title.localeCompare(b.title) : 0));
}

/**
 * The old invoice's fields that `crm.invoice.fields` types only as stored (`string`, `integer`)
 * with the types its fields page gives them (DOCS:api-reference/crm/outdated/invoice/
 * crm-invoice-fields.md): STATUS_ID a `crm_status` of the list INVOICE_STATUS, PAYED a Y/N
 * `char`, and the users' ids (the responsible person, who created the invoice, who last
 * changed its status, who marked it paid) `user`s, so the builder offers them as it does a
 * deal's stage, flags and ASSIGNED_BY_ID.
 */
const INVOICE_FIELD_TYPES: Readonly<Record<string, Pick<FieldInfo, 'type' | 'statusType'>>> = {
  STATUS_ID: { type: 'crm_status', statusType: 'INVOICE_STATUS' },
  PAYED: { type: 'char' },
  RESPONSIBLE_ID: { type: 'user' },
  CREATED_BY: { type: 'user' },
  EMP_STATUS_ID: { type: 'user' },
  EMP_PAYED_ID: { type: 'user' },
};

/** See INVOICE_FIELD_TYPES; a field a portal already types otherwise is left as it is. */
function invoiceFieldsAsDocumented(fields: FieldInfo[]): FieldInfo[] {
  return fields.map((f) => {
    const as = Object.hasOwn(INVOICE_FIELD_TYPES, f.code) ? INVOICE_FIELD_TYPES[f.code] : undefined;
    return as && ['string', 'integer'].includes(f.type) ? { ...f, ...as } : f;
  });
}

function toStages(raw: unknown, categoryId: number): StageInfo[] {
  if (!Array.isArray(raw)) return [];
  return raw
    .filter(isObj)
    .sort((a, b) => Number(a.SORT ?? 0) - Number(b.SORT ?? 0))
    .map((r) => {
      const sem = str(r.SEMANTICS);
      return {
        id: str(r.STATUS_ID),
        name: str(r.NAME) || str(r.STATUS_ID),
        categoryId,
        semantics: sem === 'S' ? 'S' : sem === 'F' ? 'F' : 'P',
      } satisfies StageInfo;
    })
    .filter((s) => s.id !== '');
}

/** Users per page of user.get: fixed by Bitrix24. */
const USER_PAGE = 50;
/**
 * Users a portal's builder lists at most (the first batch's page and one more batch of up
 * to 19 pages of 50); beyond it a rule still names a user by id.
 */
export const MAX_USERS = 1_000;

const stageEntity = (categoryId: number) =>
  categoryId === 0 ? 'DEAL_STAGE' : `DEAL_STAGE_${categoryId}`;

/**
 * Reads the metadata in at most two batch requests (each counts once against the portal's
 * REST budget): fields, pipelines, users and the general pipeline's stages, then the stages
 * of the other pipelines (their ids come from the first answer).
 */
export async function loadMetadata(
  source: MetadataSource,
  portal: PortalRow,
  now: number,
): Promise<PortalMetadata> {
  const first = await source.batch(portal, {
    deal: ['crm.deal.fields'],
    lead: ['crm.lead.fields'],
    contact: ['crm.contact.fields'],
    company: ['crm.company.fields'],
    activity: ['crm.activity.fields'],
    quote: ['crm.quote.fields'],
    // A portal with the old invoices switched off may refuse it: that command alone fails
    // (halt 0) and lands in `missing`, and invoice rules get no field list.
    invoice: ['crm.invoice.fields'],
    categories: ['crm.category.list', { entityTypeId: 2 }],
    stages0: ['crm.status.list', { order: { SORT: 'ASC' }, filter: { ENTITY_ID: 'DEAL_STAGE' } }],
    leadStages: ['crm.status.list', { order: { SORT: 'ASC' }, filter: { ENTITY_ID: 'STATUS' } }],
    quoteStatuses: [
      'crm.status.list',
      { order: { SORT: 'ASC' }, filter: { ENTITY_ID: 'QUOTE_STATUS' } },
    ],
    invoiceStatuses: [
      'crm.status.list',
      { order: { SORT: 'ASC' }, filter: { ENTITY_ID: 'INVOICE_STATUS' } },
    ],
    users: ['user.get', { FILTER: { ACTIVE: true } }],
  });
  const missing = Object.keys(first.errors);
  const categories = toCategories(first.result.categories);
  if (!categories.some((c) => c.id === 0)) categories.unshift({ id: 0, name: '', isDefault: true });
  const stages = toStages(first.result.stages0, 0);
  const others = categories.filter((c) => c.id !== 0).slice(0, 49);
  if (others.length) {
    const cmds: Record<string, BatchCommand> = {};
    for (const c of others) {
      cmds[`c${c.id}`] = [
        'crm.status.list',
        { order: { SORT: 'ASC' }, filter: { ENTITY_ID: stageEntity(c.id) } },
      ];
    }
    const second = await source.batch(portal, cmds);
    missing.push(...Object.keys(second.errors));
    for (const c of others) stages.push(...toStages(second.result[`c${c.id}`], c.id));
  }
  // user.get answers 50 users a page, whatever is asked (DOCS api-reference/user/user-get.md,
  // `start`: "The page size of results is always static: 50 records"); the rest come in one
  // more batch, up to MAX_USERS.
  const userPages: unknown[] = Array.isArray(first.result.users) ? [...first.result.users] : [];
  const userTotal = Math.min(first.total?.users ?? 0, MAX_USERS);
  if (userPages.length === USER_PAGE && userTotal > USER_PAGE) {
    const cmds: Record<string, BatchCommand> = {};
    for (let start = USER_PAGE; start < userTotal; start += USER_PAGE) {
      cmds[`u${start}`] = ['user.get', { FILTER: { ACTIVE: true }, start }];
    }
    const more = await source.batch(portal, cmds);
    missing.push(...Object.keys(more.errors));
    for (const key of Object.keys(cmds)) {
      const page = more.result[key];
      if (Array.isArray(page)) userPages.push(...page);
    }
  }
  const users = userPages
    .filter(isObj)
    .map((u) => ({
      id: str(u.ID),
      name: [str(u.NAME), str(u.LAST_NAME)].filter(Boolean).join(' ') || `#${str(u.ID)}`,
    }))
    .filter((u) => u.id !== '');
  return {
    entities: {
      deal: toFields(first.result.deal),
      lead: toFields(first.result.lead),
      contact: toFields(first.result.contact),
      company: toFields(first.result.company),
      activity: toFields(first.result.activity),
      quote: toFields(first.result.quote),
      invoice: invoiceFieldsAsDocumented(toFields(first.result.invoice)),
    },
    categories,
    stages,
    leadStages: toStages(first.result.leadStages, 0),
    quoteStatuses: toStages(first.result.quoteStatuses, 0),
    invoiceStatuses: toStages(first.result.invoiceStatuses, 0),
    users,
    missing,
    loadedAt: now,
  };
}

export interface ItemMetadata {
  /** The smart process's fields (`crm.item.fields`, camelCase codes as its items carry them). */
  fields: FieldInfo[];
  /** Its pipelines (`crm.category.list` with its entityTypeId), the default one first. */
  categories: Array<{ id: number; name: string; isDefault: boolean }>;
  /** The stages of every pipeline, each tagged with its pipeline's id. */
  stages: StageInfo[];
  /** Commands that failed: the builder falls back to a text input for what they held. */
  missing: string[];
}

/** `crm.category.list` answer → pipelines, the default one first. */
function toCategories(raw: unknown): ItemMetadata['categories'] {
  const list = isObj(raw) ? raw.categories : undefined;
  return (Array.isArray(list) ? list : [])
    .filter(isObj)
    .map((c) => ({ id: Number(c.id), name: str(c.name), isDefault: c.isDefault === 'Y' }))
    .filter((c) => Number.isInteger(c.id) && c.id >= 0)
    .sort((a, b) => Number(b.isDefault) - Number(a.isDefault) || a.id - b.id);
}

/**
 * The status list that holds a smart process pipeline's stages: `DYNAMIC_<type>_STAGE_<id>`,
 * and `SMART_INVOICE_STAGE_<id>` for the new invoice (type 31)
 * (https://apidocs.bitrix24.com/tutorials/crm/how-to-get-lists/how-to-get-stages-with-semantics.html;
 * the `stageId` row of https://apidocs.bitrix24.com/api-reference/crm/universal/crm-item-fields.html).
 */
export const itemStageEntity = (entityTypeId: number, categoryId: number): string =>
  entityTypeId === 31
    ? `SMART_INVOICE_STAGE_${categoryId}`
    : `DYNAMIC_${entityTypeId}_STAGE_${categoryId}`;

/**
 * A smart process's fields, pipelines and stages in two batch requests (each counts once
 * against the portal's REST budget): fields and pipelines
 * (https://apidocs.bitrix24.com/api-reference/crm/universal/category/crm-category-list.html,
 * `result.categories[]`), then every pipeline's stages (their list names need the pipeline
 * ids the first answer brings).
 */
export async function loadItemMetadata(
  source: MetadataSource,
  portal: PortalRow,
  entityTypeId: number,
): Promise<ItemMetadata> {
  const first = await source.batch(portal, {
    fields: ['crm.item.fields', { entityTypeId }],
    categories: ['crm.category.list', { entityTypeId }],
  });
  const missing = Object.keys(first.errors);
  const fields = first.result.fields;
  const categories = toCategories(first.result.categories).slice(0, 50);
  const stages: StageInfo[] = [];
  if (categories.length) {
    const cmds: Record<string, BatchCommand> = {};
    for (const c of categories) {
      cmds[`c${c.id}`] = [
        'crm.status.list',
        { order: { SORT: 'ASC' }, filter: { ENTITY_ID: itemStageEntity(entityTypeId, c.id) } },
      ];
    }
    const second = await source.batch(portal, cmds);
    missing.push(...Object.keys(second.errors));
    for (const c of categories) stages.push(...toStages(second.result[`c${c.id}`], c.id));
  }
  return {
    fields: toFields(isObj(fields) ? fields.fields : undefined),
    categories,
    stages,
    missing,
  };
}

/** Smart processes are 128 and up; 31 is the new invoice (crm.item.* serve both). */
export const isItemType = (n: number) => Number.isInteger(n) && (n === 31 || n >= 128);

export interface MetadataCache {
  /** The portal's metadata: cached for `ttlMs`; concurrent callers share one load. */
  get(portal: PortalRow): Promise<PortalMetadata>;
  /** One smart process's fields, pipelines and stages, cached the same way. */
  item(portal: PortalRow, entityTypeId: number): Promise<ItemMetadata>;
}

/**
 * Per-portal, in-memory, short-lived: a stampede of page loads makes one load, a failed load
 * is not kept (the next page asks again), and at most `maxPortals` entries are held. An entry
 * serves only the installation that read it: an uninstall with CLEAN keeps the portal's row
 * (and id), and a reinstall must not be served what the erased installation read (its users
 * among it).
 */
export function createMetadataCache(
  source: MetadataSource,
  opts: { ttlMs?: number; now: () => number; maxPortals?: number },
): MetadataCache {
  const ttl = opts.ttlMs ?? 5 * 60_000;
  const max = opts.maxPortals ?? 1000;
  const entries = new Map<
    string,
    { at: number; installedAt: number | null; value: Promise<unknown> }
  >();
  const cached = <T>(
    portal: PortalRow,
    key: string,
    load: (t: number) => Promise<T>,
  ): Promise<T> => {
    const t = opts.now();
    const hit = entries.get(key);
    if (hit && t - hit.at < ttl && hit.installedAt === portal.installed_at) {
      return hit.value as Promise<T>;
    }
    const value = load(t);
    const entry = { at: t, installedAt: portal.installed_at, value };
    entries.delete(key);
    entries.set(key, entry);
    if (entries.size > max) entries.delete(entries.keys().next().value!);
    value.catch(() => {
      if (entries.get(key) === entry) entries.delete(key);
    });
    return value;
  };
  return {
    get: (portal) => cached(portal, String(portal.id), (t) => loadMetadata(source, portal, t)),
    item: (portal, typeId) =>
      cached(portal, `${portal.id}:${typeId}`, () => loadItemMetadata(source, portal, typeId)),
  };
}
