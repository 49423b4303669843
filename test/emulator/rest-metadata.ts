import { LIST_PAGE } from './crm-store.js';
import { camelKey } from './item-store.js';
import { isRecord } from './http-util.js';
import { quoteInvoiceStatuses } from './crm-quote-invoice.js';
import { isSmartProcessType } from './rest-items.js';
import { param, paramString, RestError, type MethodHandler } from './rest-error.js';
import type { PortalState } from './state.js';

/**
 * The portal's CRM metadata: field descriptions, stages and pipelines (the rule builder's
 * pickers read them). One fixed catalogue per portal: the general pipeline and a second one,
 * "Wholesale", with the stage sets of the docs' examples, and two deal user fields.
 */

interface FieldDescription {
  type: string;
  isRequired: boolean;
  isReadOnly: boolean;
  isImmutable: boolean;
  isMultiple: boolean;
  isDynamic: boolean;
  title: string;
  statusType?: string;
  /** Kept for compatibility (CCrmFieldInfoAttr::Deprecated; prepareFieldInfos). */
  isDeprecated?: boolean;
  listLabel?: string;
  formLabel?: string;
  filterLabel?: string;
  items?: Array<{ ID: string; VALUE: string }>;
  settings?: Record<string, unknown>;
}

export const field = (
  type: string,
  title: string,
  more: Partial<FieldDescription> = {},
): FieldDescription => ({
  type,
  isRequired: false,
  isReadOnly: false,
  isImmutable: false,
  isMultiple: false,
  isDynamic: false,
  title,
  ...more,
});

/**
 * A user field as `crm.*.fields` describes it: `title` is the field's code, the names the
 * admin gave are `listLabel` / `formLabel` / `filterLabel`, `isDynamic` is true and a list
 * ("enumeration") carries its `items` as `{ID, VALUE}` (the UF_CRM_* entries of the
 * crm.requisite.fields example in bitrix24/b24restdocs, and
 * api-reference/crm/_include/user-fields-for-examples-cut.md for `items`).
 */
const userField = (
  code: string,
  type: string,
  label: string,
  more: Partial<FieldDescription> = {},
): [string, FieldDescription] => [
  code,
  field(type, code, {
    isDynamic: true,
    listLabel: label,
    formLabel: label,
    filterLabel: label,
    ...more,
  }),
];

/**
 * `crm.deal.fields` (bitrix24/b24restdocs api-reference/crm/deals/crm-deal-fields.md): an
 * object keyed by field code; types, titles, `statusType` and the read-only flags as in the
 * doc's answer (a subset of its fields, the ones our deals carry).
 */
const DEAL_FIELDS: Record<string, FieldDescription> = {
  ID: field('integer', 'ID', { isReadOnly: true }),
  TITLE: field('string', 'Title'),
  TYPE_ID: field('crm_status', 'Type', { statusType: 'DEAL_TYPE' }),
  CATEGORY_ID: field('crm_category', 'Sales Funnel', { isImmutable: true }),
  STAGE_ID: field('crm_status', 'Deal Stage', { statusType: 'DEAL_STAGE' }),
  STAGE_SEMANTIC_ID: field('string', 'Stage Group', { isReadOnly: true }),
  IS_NEW: field('char', 'New Deal', { isReadOnly: true }),
  PROBABILITY: field('integer', 'Probability'),
  CURRENCY_ID: field('crm_currency', 'Currency'),
  OPPORTUNITY: field('double', 'Amount'),
  TAX_VALUE: field('double', 'Tax Rate'),
  COMPANY_ID: field('crm_company', 'Company', { settings: { parentEntityTypeId: 4 } }),
  CONTACT_ID: field('crm_contact', 'Contact'),
  BEGINDATE: field('date', 'Start Date'),
  CLOSEDATE: field('date', 'Close Date'),
  OPENED: field('char', 'Available to All'),
  CLOSED: field('char', 'Closed'),
  COMMENTS: field('string', 'Comment'),
  ASSIGNED_BY_ID: field('user', 'Responsible'),
  CREATED_BY_ID: field('user', 'Created By', { isReadOnly: true }),
  MODIFY_BY_ID: field('user', 'Modified By', { isReadOnly: true }),
  DATE_CREATE: field('datetime', 'Creation Date', { isReadOnly: true }),
  DATE_MODIFY: field('datetime', 'Modification Date', { isReadOnly: true }),
  SOURCE_ID: field('crm_status', 'Source', { statusType: 'SOURCE' }),
  ...Object.fromEntries([
    userField('UF_CRM_DELIVERY', 'enumeration', 'Delivery method', {
      items: [
        { ID: '45', VALUE: 'Courier' },
        { ID: '46', VALUE: 'Pickup' },
      ],
      settings: { DISPLAY: 'LIST', LIST_HEIGHT: 1, CAPTION_NO_VALUE: '', SHOW_NO_VALUE: 'Y' },
    }),
    userField('UF_CRM_ORDER_NO', 'string', 'Order number'),
  ]),
};

/**
 * `crm.lead.fields` (DOCS:api-reference/crm/leads/crm-lead-fields.md): a subset of the doc's
 * answer with its types, titles and status lists (the stage STATUS_ID from `STATUS`, the
 * source SOURCE_ID from `SOURCE`).
 */
const LEAD_FIELDS: Record<string, FieldDescription> = {
  ID: field('integer', 'ID', { isReadOnly: true }),
  TITLE: field('string', 'Lead Title'),
  HONORIFIC: field('crm_status', 'Salutation', { statusType: 'HONORIFIC' }),
  NAME: field('string', 'First Name'),
  SECOND_NAME: field('string', 'Middle Name'),
  LAST_NAME: field('string', 'Last Name'),
  BIRTHDATE: field('date', 'Birthdate'),
  COMPANY_TITLE: field('string', 'Company Name'),
  SOURCE_ID: field('crm_status', 'Source', { statusType: 'SOURCE' }),
  SOURCE_DESCRIPTION: field('string', 'Additional Source Information'),
  STATUS_ID: field('crm_status', 'Stage', { statusType: 'STATUS' }),
  STATUS_DESCRIPTION: field('string', 'Additional Stage Information'),
  STATUS_SEMANTIC_ID: field('string', 'Status Semantic', { isReadOnly: true }),
  POST: field('string', 'Position'),
  ADDRESS_CITY: field('string', 'City'),
  CURRENCY_ID: field('crm_currency', 'Currency'),
  OPPORTUNITY: field('double', 'Amount'),
  IS_MANUAL_OPPORTUNITY: field('char', 'IS_MANUAL_OPPORTUNITY'),
  OPENED: field('char', 'Available to All'),
  COMMENTS: field('string', 'Comment'),
  HAS_PHONE: field('char', 'Phone Provided', { isReadOnly: true }),
  HAS_EMAIL: field('char', 'E-mail Provided', { isReadOnly: true }),
  ASSIGNED_BY_ID: field('user', 'Responsible User'),
  CREATED_BY_ID: field('user', 'Created By', { isReadOnly: true }),
  MODIFY_BY_ID: field('user', 'Modified By', { isReadOnly: true }),
  DATE_CREATE: field('datetime', 'Creation Date', { isReadOnly: true }),
  DATE_MODIFY: field('datetime', 'Modification Date', { isReadOnly: true }),
  COMPANY_ID: field('crm_company', 'Company', { settings: { parentEntityTypeId: 4 } }),
  CONTACT_ID: field('crm_contact', 'Contact'),
  IS_RETURN_CUSTOMER: field('char', 'Returning Lead', { isReadOnly: true }),
  DATE_CLOSED: field('datetime', 'Closing Date', { isReadOnly: true }),
  UTM_SOURCE: field('string', 'Advertising System'),
  UTM_CAMPAIGN: field('string', 'Campaign Identifier'),
  PHONE: field('crm_multifield', 'Phone', { isMultiple: true }),
  EMAIL: field('crm_multifield', 'E-mail', { isMultiple: true }),
};

/**
 * `crm.contact.fields` (api-reference/crm/contacts/crm-contact-fields.md): PHONE and EMAIL are
 * multiple `crm_multifield` fields (a subset of the doc's answer).
 */
const CONTACT_FIELDS: Record<string, FieldDescription> = {
  ID: field('integer', 'ID', { isReadOnly: true }),
  NAME: field('string', 'First name'),
  LAST_NAME: field('string', 'Last name'),
  TYPE_ID: field('crm_status', 'Contact type', { statusType: 'CONTACT_TYPE' }),
  COMPANY_ID: field('crm_company', 'Company'),
  PHONE: field('crm_multifield', 'Phone', { isMultiple: true }),
  EMAIL: field('crm_multifield', 'E-mail', { isMultiple: true }),
  ASSIGNED_BY_ID: field('user', 'Responsible person'),
  DATE_CREATE: field('datetime', 'Created on', { isReadOnly: true }),
};

/**
 * `crm.company.fields` (api-reference/crm/companies/crm-company-fields.md), a subset.
 */
const COMPANY_FIELDS: Record<string, FieldDescription> = {
  ID: field('integer', 'ID', { isReadOnly: true }),
  TITLE: field('string', 'Company Name'),
  COMPANY_TYPE: field('crm_status', 'Company type', { statusType: 'COMPANY_TYPE' }),
  PHONE: field('crm_multifield', 'Phone', { isMultiple: true }),
  EMAIL: field('crm_multifield', 'E-mail', { isMultiple: true }),
  ASSIGNED_BY_ID: field('user', 'Responsible person'),
};

/**
 * `crm.item.fields` for a smart process (api-reference/crm/universal/crm-item-fields.md):
 * `{fields: {...}}` keyed in camelCase, each with its `upperName`; a stage field's
 * `statusType` is `DYNAMIC_<entityTypeId>_STAGE_<categoryId>`. A subset of the doc's
 * answer, and one list user field (`ufCrm<n>_<digits>`, labels as for crm.deal.fields).
 */
/** The smart process's list user field, as the portal names one created in its settings. */
export const PRIORITY_FIELD = (typeId: number): string => `UF_CRM_${typeId}_1747309727`;

function itemFields(typeId: number): Record<string, FieldDescription & { upperName: string }> {
  const f = (code: string, upper: string, d: FieldDescription) => [
    code,
    { ...d, upperName: upper },
  ];
  return Object.fromEntries([
    f('id', 'ID', field('integer', 'ID', { isReadOnly: true })),
    f('title', 'TITLE', field('string', 'Name')),
    f('createdTime', 'CREATED_TIME', field('datetime', 'Created at', { isReadOnly: true })),
    f('assignedById', 'ASSIGNED_BY_ID', field('user', 'Assigned to')),
    f('opened', 'OPENED', field('boolean', 'Publicly available', { isRequired: true })),
    f('categoryId', 'CATEGORY_ID', field('crm_category', 'Pipeline')),
    f(
      'stageId',
      'STAGE_ID',
      field('crm_status', 'Stage', { statusType: `DYNAMIC_${typeId}_STAGE_${typeId * 10}` }),
    ),
    f('opportunity', 'OPPORTUNITY', field('double', 'Amount')),
    // Named as the portal names a field created in its settings (UF_CRM_<type>_<timestamp>),
    // converted by the doc's regular rule (item-store.ts camelKey).
    f(
      camelKey(PRIORITY_FIELD(typeId)),
      PRIORITY_FIELD(typeId),
      userField(camelKey(PRIORITY_FIELD(typeId)), 'enumeration', 'Priority', {
        items: [
          { ID: '61', VALUE: 'High' },
          { ID: '62', VALUE: 'Low' },
        ],
      })[1],
    ),
  ]) as Record<string, FieldDescription & { upperName: string }>;
}

/** A row of `crm.status.list` (crm-status-list.md's answer). */
export interface StatusRow {
  ID: string;
  ENTITY_ID: string;
  STATUS_ID: string;
  NAME: string;
  NAME_INIT: string;
  SORT: string;
  SYSTEM: 'Y' | 'N';
  CATEGORY_ID: string | null;
  COLOR: string;
  SEMANTICS: 'S' | 'F' | null;
  /**
   * Only for the lists whose semantics the core knows: STATUS, QUOTE_STATUS, DEAL_STAGE and
   * the deal pipelines' lists (CORE crm classes/general/restservice.php
   * `CCrmStatusRestProxy::prepareExtra`); INVOICE_STATUS rows have none.
   */
  EXTRA?: { SEMANTICS: string; COLOR: string };
}

/**
 * Stages of the general pipeline: the `crm.status.list` answer of
 * api-reference/crm/status/crm-status-list.md (ENTITY_ID `DEAL_STAGE`, CATEGORY_ID null).
 * A second pipeline's stages are `DEAL_STAGE_<id>` with ids `C<id>:…`
 * (tutorials/crm/how-to-get-lists/how-to-get-stages-with-semantics.md); that its rows carry
 * CATEGORY_ID as a string is our guess.
 */
/** A deal pipeline's stages (`'0'`: General), as the deal card's stage bar offers them. */
export function dealStagesOf(categoryId: string): Array<{ id: string; name: string }> {
  const entity = categoryId === '0' ? 'DEAL_STAGE' : `DEAL_STAGE_${categoryId}`;
  return stages()
    .filter((s) => s.ENTITY_ID === entity)
    .map((s) => ({ id: s.STATUS_ID, name: s.NAME }));
}

function stages(): StatusRow[] {
  let id = 100;
  const row = (
    entity: string,
    category: string | null,
    statusId: string,
    name: string,
    sort: number,
    semantics: 'process' | 'success' | 'failure' | 'apology',
    color: string,
  ): StatusRow => ({
    ID: String((id += 1)),
    ENTITY_ID: entity,
    STATUS_ID: statusId,
    NAME: name,
    NAME_INIT: ['NEW', 'WON', 'LOSE'].includes(statusId.replace(/^C\d+:/, '')) ? name : '',
    SORT: String(sort),
    SYSTEM: ['NEW', 'WON', 'LOSE'].includes(statusId.replace(/^C\d+:/, '')) ? 'Y' : 'N',
    CATEGORY_ID: category,
    COLOR: color,
    SEMANTICS: semantics === 'success' ? 'S' : semantics === 'process' ? null : 'F',
    EXTRA: { SEMANTICS: semantics, COLOR: color },
  });
  const general = (s: string, n: string, sort: number, sem: 'process', c: string) =>
    row('DEAL_STAGE', null, s, n, sort, sem, c);
  return [
    general('NEW', 'New', 10, 'process', '#39A8EF'),
    general('PREPARATION', 'Document preparation', 20, 'process', '#2FC6F6'),
    general('PREPAYMENT_INVOICE', 'Prepayment invoice', 30, 'process', '#55D0E0'),
    general('EXECUTING', 'In progress', 40, 'process', '#47E4C2'),
    general('FINAL_INVOICE', 'Final invoice', 50, 'process', '#FFA900'),
    row('DEAL_STAGE', null, 'WON', 'Deal successful', 60, 'success', '#7BD500'),
    row('DEAL_STAGE', null, 'LOSE', 'Deal failed', 70, 'failure', '#FF5752'),
    row('DEAL_STAGE', null, 'APOLOGY', 'Failure reason analysis', 80, 'apology', '#FF5752'),
    row('DEAL_STAGE_1', '1', 'C1:NEW', 'New', 10, 'process', '#39A8EF'),
    row('DEAL_STAGE_1', '1', 'C1:EXECUTING', 'Shipping', 20, 'process', '#47E4C2'),
    row('DEAL_STAGE_1', '1', 'C1:WON', 'Deal successful', 30, 'success', '#7BD500'),
    row('DEAL_STAGE_1', '1', 'C1:LOSE', 'Deal failed', 40, 'failure', '#FF5752'),
    // Lead stages: the list `STATUS` (crm-lead-fields.md's statusType of STATUS_ID), a
    // converted lead a success and junk a failure (crm-lead-get.md's STATUS_SEMANTIC_ID).
    row('STATUS', null, 'NEW', 'Unassigned', 10, 'process', '#39A8EF'),
    row('STATUS', null, 'IN_PROCESS', 'In progress', 20, 'process', '#2FC6F6'),
    row('STATUS', null, 'PROCESSED', 'Processed', 30, 'process', '#55D0E0'),
    row('STATUS', null, 'CONVERTED', 'Good lead', 40, 'success', '#7BD500'),
    row('STATUS', null, 'JUNK', 'Junk lead', 50, 'failure', '#FF5752'),
    ...quoteInvoiceStatuses(),
  ];
}

/**
 * `crm.category.list` for deals (api-reference/crm/universal/category/crm-category-list.md):
 * `{categories: [{id, name, sort, entityTypeId, isDefault}]}`; the general pipeline is id 0,
 * isDefault `Y`, and has no originId in the doc's example.
 */
const DEAL_CATEGORIES = [
  {
    id: 1,
    name: 'Wholesale',
    sort: 200,
    entityTypeId: 2,
    isDefault: 'N',
    originId: '',
    originatorId: '',
  },
  { id: 0, name: 'General', sort: 300, entityTypeId: 2, isDefault: 'Y' },
];

/**
 * A smart process's pipelines, in the shape of crm-category-list.md's answer (which lists a
 * smart process's `{id, name, sort, entityTypeId, isDefault}`). Every smart process here has
 * two: its default one and "Partners". Their ids (`<type>0`, `<type>1`) and names are our
 * guess; `<type>0` matches the `statusType` crm.item.fields gives `stageId` above.
 */
const itemCategories = (typeId: number) => [
  { id: typeId * 10, name: 'General', sort: 500, entityTypeId: typeId, isDefault: 'Y' },
  { id: typeId * 10 + 1, name: 'Partners', sort: 600, entityTypeId: typeId, isDefault: 'N' },
];

/**
 * A smart process pipeline's stages, asked for by ENTITY_ID `DYNAMIC_<type>_STAGE_<category>`
 * (tutorials/crm/how-to-get-lists/how-to-get-stages-with-semantics.md; the `stageId` row of
 * api-reference/crm/universal/crm-item-fields.md): STATUS_IDs carry the prefix
 * `DT<type>_<category>:` (that page's `'DT1220_30:NEW' = 'Start'`), and the success and
 * failure stages are `SUCCESS` / `FAIL` as the items above use them. The names, sorts and the
 * string CATEGORY_ID are our guess. An unknown type or pipeline lists nothing, as an unknown
 * ENTITY_ID does.
 */
function itemStages(entityId: string): StatusRow[] {
  const m = /^DYNAMIC_(\d+)_STAGE_(\d+)$/.exec(entityId);
  if (!m) return [];
  const typeId = Number(m[1]);
  const cat = Number(m[2]);
  if (!isSmartProcessType(typeId) || !itemCategories(typeId).some((c) => c.id === cat)) return [];
  const prefix = `DT${typeId}_${cat}:`;
  const names: Array<[string, string, 'S' | 'F' | null, string]> = [
    ['NEW', 'Start', null, '#22B9FF'],
    ['PREPARATION', cat % 10 === 0 ? 'Preparation' : 'Negotiation', null, '#FFA900'],
    ['SUCCESS', 'Success', 'S', '#7BD500'],
    ['FAIL', 'Failure', 'F', '#FF5752'],
  ];
  return names.map(([code, name, sem, color], i) => ({
    ID: String(5000 + typeId * 100 + (cat % 10) * 10 + i),
    ENTITY_ID: entityId,
    STATUS_ID: prefix + code,
    NAME: name,
    NAME_INIT: code === 'PREPARATION' ? '' : name,
    SORT: String((i + 1) * 10),
    SYSTEM: code === 'PREPARATION' ? 'N' : 'Y',
    CATEGORY_ID: String(cat),
    COLOR: color,
    SEMANTICS: sem,
    EXTRA: {
      SEMANTICS: sem === 'S' ? 'success' : sem === 'F' ? 'failure' : 'process',
      COLOR: color,
    },
  }));
}

/** Rows matching `filter`: equality on each key given (the only filter form we model). */
function filtered(rows: StatusRow[], filter: unknown): StatusRow[] {
  if (!isRecord(filter)) return rows;
  return rows.filter((r) =>
    Object.entries(filter).every(
      ([k, v]) => String((r as unknown as Record<string, unknown>)[k.toUpperCase()]) === String(v),
    ),
  );
}

/**
 * `crm.activity.fields`
 * (DOCS:api-reference/crm/timeline/activities/activity-base/crm-activity-fields.md): the doc's
 * answer, types and titles, less the file fields (FILES, WEBDAV_ELEMENTS); activities have
 * no user fields.
 */
const ACTIVITY_FIELDS: Record<string, FieldDescription> = {
  ID: field('integer', 'ID', { isReadOnly: true }),
  OWNER_ID: field('integer', 'Owner ID', { isImmutable: true }),
  OWNER_TYPE_ID: field('crm_enum_ownertype', 'Owner Type', { isImmutable: true }),
  TYPE_ID: field('crm_enum_activitytype', 'Type', { isRequired: true, isImmutable: true }),
  PROVIDER_ID: field('string', 'Provider ID'),
  PROVIDER_TYPE_ID: field('string', 'Provider Type'),
  PROVIDER_GROUP_ID: field('string', 'Connector Type'),
  ASSOCIATED_ENTITY_ID: field('integer', 'ID of the entity associated with the activity', {
    isReadOnly: true,
  }),
  SUBJECT: field('string', 'Subject', { isRequired: true }),
  START_TIME: field('datetime', 'Start'),
  END_TIME: field('datetime', 'Deadline'),
  DEADLINE: field('datetime', 'Due Date'),
  COMPLETED: field('char', 'Completed'),
  STATUS: field('crm_enum_activitystatus', 'Status'),
  RESPONSIBLE_ID: field('user', 'Responsible', { isRequired: true }),
  PRIORITY: field('crm_enum_activitypriority', 'Priority'),
  NOTIFY_TYPE: field('crm_enum_activitynotifytype', 'Notification Type'),
  NOTIFY_VALUE: field('integer', 'Notification Parameter'),
  DESCRIPTION: field('string', 'Description'),
  DESCRIPTION_TYPE: field('crm_enum_contenttype', 'Description Type'),
  DIRECTION: field('crm_enum_activitydirection', 'Direction'),
  LOCATION: field('string', 'Location'),
  CREATED: field('datetime', 'Creation Date', { isReadOnly: true }),
  AUTHOR_ID: field('user', 'Created By', { isReadOnly: true }),
  LAST_UPDATED: field('datetime', 'Last Updated', { isReadOnly: true }),
  EDITOR_ID: field('user', 'Edited By', { isReadOnly: true }),
  SETTINGS: field('object', 'Settings'),
  ORIGIN_ID: field('string', 'External Code'),
  ORIGINATOR_ID: field('string', 'External Source'),
  RESULT_STATUS: field('integer', 'RESULT_STATUS'),
  RESULT_STREAM: field('integer', 'RESULT_STREAM'),
  RESULT_SOURCE_ID: field('string', 'RESULT_SOURCE_ID'),
  PROVIDER_PARAMS: field('object', 'Provider Parameters'),
  PROVIDER_DATA: field('string', 'Provider Data'),
  RESULT_MARK: field('integer', 'RESULT_MARK'),
  RESULT_VALUE: field('double', 'RESULT_VALUE'),
  RESULT_SUM: field('double', 'RESULT_SUM'),
  RESULT_CURRENCY_ID: field('string', 'RESULT_CURRENCY_ID'),
  AUTOCOMPLETE_RULE: field('integer', 'Autocomplete'),
  BINDINGS: field('crm_activity_binding', 'Bindings', { isReadOnly: true, isMultiple: true }),
  COMMUNICATIONS: field('crm_activity_communication', 'Communication Channel', {
    isRequired: true,
    isMultiple: true,
  }),
  IS_INCOMING_CHANNEL: field('char', 'IS_INCOMING_CHANNEL', { isReadOnly: true }),
};

const STAGES = new WeakMap<PortalState, StatusRow[]>();
const stagesOf = (portal: PortalState): StatusRow[] => {
  let s = STAGES.get(portal);
  if (!s) STAGES.set(portal, (s = stages()));
  return s;
};

export const METADATA_METHODS: Readonly<Record<string, MethodHandler>> = {
  // No parameters, no errors (crm-deal-fields.md "Error Handling: does not return errors").
  'crm.deal.fields': () => ({ result: DEAL_FIELDS }),
  'crm.lead.fields': () => ({ result: LEAD_FIELDS }),
  'crm.contact.fields': () => ({ result: CONTACT_FIELDS }),
  'crm.company.fields': () => ({ result: COMPANY_FIELDS }),
  'crm.activity.fields': () => ({ result: ACTIVITY_FIELDS }),
  // Unknown types: NOT_FOUND, as crm.item.* answer for them (crm-item-get.md's errors).
  'crm.item.fields': (params) => {
    const raw = paramString(params, 'entityTypeId');
    if (!/^\d+$/.test(raw) || !isSmartProcessType(Number(raw))) {
      throw new RestError(400, 'NOT_FOUND', 'Smart process not found');
    }
    return { result: { fields: itemFields(Number(raw)) } };
  },
  // Ordered by `order` (SORT ASC is the doc's example; ID otherwise, our guess), pages of 50
  // with `total` (crm-status-list.md's answer) and `next` as every list method.
  'crm.status.list': (params, _c, portal) => {
    const filter = param(params, 'filter');
    const entity = isRecord(filter) ? (filter.ENTITY_ID ?? filter.entity_id) : undefined;
    const dynamic = typeof entity === 'string' ? itemStages(entity) : [];
    const rows = filtered([...stagesOf(portal), ...dynamic], filter);
    const order = param(params, 'order');
    const bySort = isRecord(order) && Object.keys(order).some((k) => k.toUpperCase() === 'SORT');
    const desc = isRecord(order) && String(Object.values(order)[0] ?? '').toUpperCase() === 'DESC';
    const sorted = [...rows].sort((a, b) => {
      const d = bySort ? Number(a.SORT) - Number(b.SORT) : Number(a.ID) - Number(b.ID);
      return desc ? -d : d;
    });
    const start = Math.max(0, Number(paramString(params, 'start')) || 0);
    const page = sorted.slice(start, start + LIST_PAGE);
    const out: { result: unknown; total: number; next?: number } = {
      result: page,
      total: sorted.length,
    };
    if (start + LIST_PAGE < sorted.length) out.next = start + LIST_PAGE;
    return out;
  },
  // Errors as the doc lists them: NOT_FOUND for an unknown type, ENTITY_TYPE_NOT_SUPPORTED
  // for a type without pipelines (leads, contacts, companies: our reading of that line).
  'crm.category.list': (params) => {
    const raw = paramString(params, 'entityTypeId');
    const typeId = Number(raw);
    if (!/^\d+$/.test(raw)) throw new RestError(400, 'NOT_FOUND', 'Smart process not found');
    if (typeId === 2) return { result: { categories: DEAL_CATEGORIES }, total: 2 };
    if (isSmartProcessType(typeId)) {
      const categories = itemCategories(typeId);
      return { result: { categories }, total: categories.length };
    }
    if ([1, 3, 4].includes(typeId)) {
      throw new RestError(
        400,
        'ENTITY_TYPE_NOT_SUPPORTED',
        `Entity type ${typeId} is not supported`,
      );
    }
    throw new RestError(400, 'NOT_FOUND', 'Smart process not found');
  },
};
