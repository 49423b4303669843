import { fireInBackground, restOrigin } from './event-delivery.js';
import { isRecord } from './http-util.js';
import {
  param,
  RestError,
  type CallContext,
  type MethodHandler,
  type MethodResult,
} from './rest-error.js';
import { field } from './rest-metadata.js';
import type { PortalState } from './state.js';
import type { CrmItem } from './types.js';

/**
 * Old invoices (`crm.invoice.*`) and the field lists of quotes and invoices. Quotes' get /
 * list / add / update / delete are the common CRM ones (rest-methods.ts `crmMethods`); old
 * invoices have a REST service of their own with other answers (CORE crm classes/general/
 * restservice_invoice.php `CCrmInvoiceRestService`): every refusal is a RestException with
 * no code (400, error ""), a missing invoice is "Not found." (with the stop), and add, update
 * and delete answer the invoice's ID, not true.
 */

const refuse = (description: string): RestError => new RestError(400, '', description);

/**
 * What add and update take (`getFieldsInfo` entries with `add` / `update` true); the others,
 * PRICE, PAYED, DATE_UPDATE, DATE_STATUS, CREATED_BY…, are read-only and dropped
 * (`filterFields`). INVOICE_PROPERTIES is accepted and not modelled.
 */
const WRITABLE = new Set([
  'ACCOUNT_NUMBER',
  'COMMENTS',
  'DATE_BILL',
  'DATE_INSERT',
  'DATE_MARKED',
  'DATE_PAY_BEFORE',
  'XML_ID',
  'ORDER_TOPIC',
  'PAY_SYSTEM_ID',
  'PAY_VOUCHER_DATE',
  'PAY_VOUCHER_NUM',
  'PERSON_TYPE_ID',
  'REASON_MARKED',
  'RESPONSIBLE_ID',
  'STATUS_ID',
  'IS_RECURRING',
  'UF_COMPANY_ID',
  'UF_CONTACT_ID',
  'UF_MYCOMPANY_ID',
  'UF_DEAL_ID',
  'UF_QUOTE_ID',
  'USER_DESCRIPTION',
  'PRODUCT_ROWS',
]);

function writable(params: Record<string, unknown>): Record<string, unknown> {
  const fields = param(params, 'fields');
  const out: Record<string, unknown> = {};
  if (isRecord(fields)) {
    for (const [k, v] of Object.entries(fields)) if (WRITABLE.has(k)) out[k] = v;
  }
  // An empty (or missing) `fields` after filtering: "Invalid parameters." (add, update).
  if (Object.keys(out).length === 0) throw refuse('Invalid parameters.');
  return out;
}

/** update / delete: `$ID <= 0` is "Invalid identifier."; get has no such check. */
function invoiceId(params: Record<string, unknown>): string {
  const raw = String(param(params, 'id') ?? '');
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) throw refuse('Invalid identifier.');
  return String(Number(raw));
}

/**
 * `CCrmInvoice::CheckFields` (crm classes/general/crm_invoice.php) on the fields to be saved:
 * product rows with a quantity, a subject, a status, a payer type with a contact or company,
 * a payment system. Each problem is a line ending in `<br />\n`. The texts are lang messages
 * (CRM_ERROR_EMPTY_INVOICE_SPEC, CRM_ERROR_FIELD_IS_MISSING, …) the mirror does not hold: ours
 * are stand-ins.
 */
function checkInvoice(f: Record<string, unknown>): void {
  const problems: string[] = [];
  const rows = Array.isArray(f['PRODUCT_ROWS']) ? (f['PRODUCT_ROWS'] as unknown[]) : [];
  if (rows.length === 0) problems.push('The invoice has no products.');
  else if (rows.some((r) => !isRecord(r) || !(Number(r['QUANTITY']) > 0))) {
    problems.push('A product quantity is not valid.');
  }
  if (!f['ORDER_TOPIC']) problems.push('The field "Subject" is missing.');
  if (!f['STATUS_ID']) problems.push('The field "Status" is incorrect.');
  const payer = Number(f['UF_COMPANY_ID'] ?? 0) > 0 || Number(f['UF_CONTACT_ID'] ?? 0) > 0;
  if (!(Number(f['PERSON_TYPE_ID'] ?? 0) > 0) || !payer) problems.push('The payer is missing.');
  if (!(Number(f['PAY_SYSTEM_ID'] ?? 0) > 0))
    problems.push('The field "Payment system" is missing.');
  if (problems.length > 0) throw refuse(problems.map((p) => `${p}<br />\n`).join(''));
}

/**
 * The events an invoice change sends, in the core's order: `CCrmInvoice::Add` (also behind
 * Update) calls `SetStatus` whenever a status is given, which fires OnAfterCrmInvoiceSetStatus,
 * and only then OnAfterCrmInvoiceAdd / Update. REST add requires a status and REST update
 * carries the invoice's current one over (`update` merges `getInvoiceDataByID`), so every
 * add and update also sends ONCRMINVOICESETSTATUS, status changed or not. Each carries
 * FIELDS[ID] (`CCrmInvoiceRestService::processEvent`; DOCS:api-reference/crm/outdated/invoice/
 * events-invoice/on-crm-invoice-set-status.md).
 */
export function invoiceEvents(action: 'ADD' | 'UPDATE' | 'DELETE'): string[] {
  return action === 'DELETE'
    ? ['ONCRMINVOICEDELETE']
    : ['ONCRMINVOICESETSTATUS', `ONCRMINVOICE${action}`];
}

const fire = (
  portal: PortalState,
  action: 'ADD' | 'UPDATE' | 'DELETE',
  id: string,
  call: CallContext,
): void => {
  for (const event of invoiceEvents(action)) {
    fireInBackground(portal, event, { FIELDS: { ID: id } }, call.userId, restOrigin(call));
  }
};

/** crm.invoice.list leaves out the properties and product rows (crm-invoice-list.md). */
function listed(item: CrmItem, select: unknown): Record<string, unknown> {
  const wanted = (Array.isArray(select) ? select : isRecord(select) ? Object.values(select) : [])
    .map((s) => String(s).toUpperCase())
    .filter((s) => s !== '');
  const all = wanted.length === 0 || wanted.includes('*');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(item)) {
    if (k === 'PRODUCT_ROWS' || k === 'INVOICE_PROPERTIES') continue;
    const uf = k.startsWith('UF_');
    if (wanted.includes(k) || (all && !uf) || (uf && wanted.includes('UF_*'))) out[k] = v;
  }
  // "ID" is added to the select for paging and removed again when it was not asked for
  // (`getList`, `$idInSelect`).
  if (!all && !wanted.includes('ID')) delete out['ID'];
  return out;
}

const INVOICE_CRUD: Record<string, MethodHandler> = {
  'crm.invoice.get': (params, _c, portal) => {
    const item = portal.invoices.get(String(Number(param(params, 'id') ?? 0)));
    if (!item) throw refuse('Not found.');
    return { result: item };
  },
  // Newest first unless told otherwise (`getList`: order defaults to ID DESC).
  'crm.invoice.list': (params, _c, portal) => {
    const order = param(params, 'order');
    const page = portal.invoices.list({
      filter: param(params, 'filter'),
      order: isRecord(order) && Object.keys(order).length > 0 ? order : { ID: 'DESC' },
      start: param(params, 'start'),
    });
    const out: MethodResult = { result: page.items.map((i) => listed(i, param(params, 'select'))) };
    if (page.next !== undefined) out.next = page.next;
    if (page.total !== undefined) out.total = page.total;
    return out;
  },
  'crm.invoice.add': (params, call, portal) => {
    const fields = writable(params);
    checkInvoice(fields);
    const item = portal.invoices.add(fields, call.userId);
    fire(portal, 'ADD', item.ID, call);
    return { result: Number(item.ID) };
  },
  'crm.invoice.update': (params, call, portal) => {
    const id = invoiceId(params);
    const fields = writable(params);
    const current = portal.invoices.get(id);
    if (!current) throw refuse('Not found.');
    checkInvoice({ ...current, ...fields });
    portal.invoices.update(id, fields, call.userId);
    fire(portal, 'UPDATE', id, call);
    return { result: Number(id) };
  },
  // `CCrmInvoice::Delete` of a missing invoice fails without a message of its own, so the
  // service's fallback text answers (an application exception's text would come instead).
  'crm.invoice.delete': (params, call, portal) => {
    const id = invoiceId(params);
    if (!portal.invoices.remove(id)) {
      throw refuse('Unknown error during invoice deleting.<br />\n');
    }
    fire(portal, 'DELETE', id, call);
    return { result: Number(id) };
  },
};

/**
 * `crm.invoice.fields` (CORE crm classes/general/restservice_invoice.php
 * `CCrmInvoiceRestService::fields`, `makeFieldInfo`): every field `getFieldsInfo` lists, with
 * its `type`, `size` where it has one, `isRequired`, `isReadOnly` and a `title`, and nothing
 * else (no isImmutable / isMultiple / isDynamic / statusType as the other CRM records have:
 * STATUS_ID and PAYED are `string`s of size 1 there, though the fields page says crm_status
 * and char). INVOICE_PROPERTIES (`aarray`) and PRODUCT_ROWS (`iarray`) carry a `definition`
 * built from their `.{}` / `.[].` entries. The titles are lang messages the mirror does not
 * hold (`InvoiceTable::getFieldCaption`): ours follow the fields page
 * (DOCS:api-reference/crm/outdated/invoice/crm-invoice-fields.md), the rows' are their codes.
 * The portal's invoice user fields (none here) would follow in the common shape.
 */
const invoiceField = (
  type: string,
  title: string,
  isRequired = false,
  isReadOnly = false,
  size?: string,
) => ({ type, ...(size ? { size } : {}), isRequired, isReadOnly, title });
const INVOICE_FIELDS = {
  ACCOUNT_NUMBER: invoiceField('string', 'Number', true, false, '100'),
  COMMENTS: invoiceField('text', 'Comment'),
  CURRENCY: invoiceField('string', 'Currency', false, true, '3'),
  DATE_BILL: invoiceField('date', 'Invoice date', true),
  DATE_INSERT: invoiceField('datetime', 'Created', true),
  DATE_MARKED: invoiceField('datetime', 'Rejection date', true),
  DATE_PAY_BEFORE: invoiceField('date', 'Pay before', true),
  DATE_PAYED: invoiceField('datetime', 'Date paid', false, true),
  DATE_STATUS: invoiceField('datetime', 'Status changed', false, true),
  DATE_UPDATE: invoiceField('datetime', 'Modified', false, true),
  CREATED_BY: invoiceField('integer', 'Created by', false, true),
  EMP_PAYED_ID: invoiceField('integer', 'Marked paid by', false, true),
  EMP_STATUS_ID: invoiceField('integer', 'Status changed by', false, true),
  ID: invoiceField('integer', 'ID', false, true),
  LID: invoiceField('string', 'Site', false, true, '2'),
  XML_ID: invoiceField('string', 'External code', false, false, '255'),
  ORDER_TOPIC: invoiceField('string', 'Subject', true, false, '255'),
  PAY_SYSTEM_ID: invoiceField('integer', 'Payment system', true),
  PAY_VOUCHER_DATE: invoiceField('date', 'Payment date', true),
  PAY_VOUCHER_NUM: invoiceField('string', 'Payment document number', true, false, '20'),
  PAYED: invoiceField('string', 'Paid', false, true, '1'),
  PERSON_TYPE_ID: invoiceField('integer', 'Payer type', true),
  PRICE: invoiceField('double', 'Amount', false, true, '18,2'),
  REASON_MARKED: invoiceField('string', 'Status comment', true, false, '255'),
  RESPONSIBLE_EMAIL: invoiceField('string', "Responsible person's e-mail", false, true, '255'),
  RESPONSIBLE_ID: invoiceField('integer', 'Responsible', true, false, '18'),
  RESPONSIBLE_LAST_NAME: invoiceField('string', 'Responsible last name', false, true, '50'),
  RESPONSIBLE_LOGIN: invoiceField('string', 'Responsible login', false, true, '50'),
  RESPONSIBLE_NAME: invoiceField('string', 'Responsible first name', false, true, '50'),
  RESPONSIBLE_PERSONAL_PHOTO: invoiceField('integer', 'Responsible photo', false, true, '18'),
  RESPONSIBLE_SECOND_NAME: invoiceField('string', 'Responsible middle name', false, true, '50'),
  RESPONSIBLE_WORK_POSITION: invoiceField('string', 'Responsible position', false, true, '255'),
  STATUS_ID: invoiceField('string', 'Status', true, false, '1'),
  TAX_VALUE: invoiceField('double', 'Tax amount', false, true, '18,2'),
  IS_RECURRING: invoiceField('string', 'IS_RECURRING', false, false, '1'),
  UF_COMPANY_ID: invoiceField('integer', 'Company', true, false, '20'),
  UF_CONTACT_ID: invoiceField('integer', 'Contact', true, false, '20'),
  UF_MYCOMPANY_ID: invoiceField('integer', 'Your company', true, false, '20'),
  UF_DEAL_ID: invoiceField('integer', 'Deal', true, false, '20'),
  UF_QUOTE_ID: invoiceField('integer', 'Quote', true, false, '20'),
  USER_DESCRIPTION: invoiceField('string', 'Comment for the client', true, false, '2000'),
  PR_LOCATION: invoiceField('integer', 'Location', true),
  INVOICE_PROPERTIES: {
    ...invoiceField('aarray', 'Properties', true),
    definition: {
      key: { type: 'integer', isRequired: true, isReadOnly: false },
      value: { type: 'variable', isRequired: true, isReadOnly: false },
    },
  },
  PRODUCT_ROWS: {
    ...invoiceField('iarray', 'Products', true),
    definition: {
      row: {
        ID: invoiceField('integer', 'ID', true, false),
        PRICE: invoiceField('double', 'PRICE', true, false, '18,2'),
        DISCOUNT_PRICE: invoiceField('double', 'DISCOUNT_PRICE', true, false, '18,2'),
        PRODUCT_ID: invoiceField('integer', 'PRODUCT_ID', true, false),
        PRODUCT_NAME: invoiceField('string', 'PRODUCT_NAME', false, false, '255'),
        QUANTITY: invoiceField('double', 'QUANTITY', true, false, '18,2'),
        VAT_RATE: invoiceField('double', 'VAT_RATE', false, true, '18,2'),
        VAT_INCLUDED: invoiceField('string', 'VAT_INCLUDED', false, true, '1'),
        MEASURE_CODE: invoiceField('integer', 'MEASURE_CODE', false, false),
        MEASURE_NAME: invoiceField('string', 'MEASURE_NAME', false, false),
        MODULE: invoiceField('string', 'MODULE', false, true),
        CATALOG_XML_ID: invoiceField('string', 'CATALOG_XML_ID', false, true),
        PRODUCT_XML_ID: invoiceField('string', 'PRODUCT_XML_ID', false, true),
      },
    },
  },
};

/**
 * `crm.quote.fields` (CORE crm classes/general/crm_quote.php `CCrmQuote::GetFieldsInfo`, in
 * the common shape of restservice.php `CCrmRestHelper::prepareFieldInfos`, which leaves out
 * the hidden account-currency fields; DOCS:api-reference/crm/quote/crm-quote-fields.md, whose
 * BEGINDATA / CLOSEDATA are the core's BEGINDATE / CLOSEDATE): STATUS_ID from the
 * QUOTE_STATUS list. Less the parent-field, last-activity and last-communication fields the
 * core appends; the titles follow the fields page.
 */
const QUOTE_FIELDS = {
  ID: field('integer', 'ID', { isReadOnly: true }),
  QUOTE_NUMBER: field('string', 'Quote #', { isReadOnly: true }),
  TITLE: field('string', 'Name', { isRequired: true }),
  STATUS_ID: field('crm_status', 'Status', { statusType: 'QUOTE_STATUS' }),
  CURRENCY_ID: field('crm_currency', 'Currency'),
  OPPORTUNITY: field('double', 'Total'),
  TAX_VALUE: field('double', 'Tax rate'),
  COMPANY_ID: field('crm_company', 'Company'),
  MYCOMPANY_ID: field('crm_company', 'Your company'),
  CONTACT_ID: field('crm_contact', 'Contact', { isDeprecated: true }),
  CONTACT_IDS: field('crm_contact', 'Contacts', { isMultiple: true }),
  BEGINDATE: field('date', 'Date'),
  CLOSEDATE: field('date', 'Expiration date'),
  ACTUAL_DATE: field('date', 'Valid until'),
  OPENED: field('char', 'Available to everyone'),
  CLOSED: field('char', 'Closed'),
  COMMENTS: field('string', 'Comment'),
  CONTENT: field('string', 'Content'),
  TERMS: field('string', 'Terms'),
  CLIENT_TITLE: field('string', 'Client name'),
  CLIENT_ADDR: field('string', 'Contact address'),
  CLIENT_CONTACT: field('string', 'Contact person'),
  CLIENT_EMAIL: field('string', 'Contact e-mail'),
  CLIENT_PHONE: field('string', 'Contact phone'),
  CLIENT_TP_ID: field('string', "Client's VAT ID"),
  CLIENT_TPA_ID: field('string', "Client's TIN"),
  ASSIGNED_BY_ID: field('user', 'Responsible'),
  CREATED_BY_ID: field('user', 'Created by', { isReadOnly: true }),
  MODIFY_BY_ID: field('user', 'Modified by', { isReadOnly: true }),
  DATE_CREATE: field('datetime', 'Created', { isReadOnly: true }),
  DATE_MODIFY: field('datetime', 'Modified', { isReadOnly: true }),
  LEAD_ID: field('crm_lead', 'Lead'),
  DEAL_ID: field('crm_deal', 'Deal'),
  PERSON_TYPE_ID: field('integer', 'Payer type'),
  LOCATION_ID: field('location', 'Location'),
  UTM_SOURCE: field('string', 'Ad system'),
  UTM_MEDIUM: field('string', 'Traffic type'),
  UTM_CAMPAIGN: field('string', 'Ad campaign UTM'),
  UTM_CONTENT: field('string', 'Campaign contents'),
  UTM_TERM: field('string', 'Campaign search term'),
};

export const QUOTE_INVOICE_METHODS: Readonly<Record<string, MethodHandler>> = {
  ...INVOICE_CRUD,
  'crm.invoice.fields': () => ({ result: INVOICE_FIELDS }),
  'crm.quote.fields': () => ({ result: QUOTE_FIELDS }),
};
