import type { EntityDefinition } from './crm-store.js';
import type { StatusRow } from './rest-metadata.js';
import type { CrmItem } from './types.js';

/**
 * A quote (estimate) as `crm.quote.get` answers it: the row of `CCrmQuote::GetList` by ID
 * with its user fields (CORE crm classes/general/restservice.php `CCrmQuoteRestProxy::
 * innerGet`), the fields `CCrmQuote::GetFieldsInfo` lists (crm classes/general/crm_quote.php;
 * DOCS:api-reference/crm/quote/crm-quote-fields.md), less the hidden account-currency ones and
 * the CLIENT_* requisites. The values (status DRAFT, empty links as null, as our deals have
 * them) are ours: neither source shows an answer.
 */
export const QUOTE: EntityDefinition = {
  savedOnlyWhenChanged: true,
  defaults: (id, userId, date) => ({
    ID: id,
    QUOTE_NUMBER: id,
    TITLE: `Quote #${id}`,
    STATUS_ID: 'DRAFT',
    CURRENCY_ID: 'USD',
    OPPORTUNITY: '0.00',
    TAX_VALUE: '0.00',
    COMPANY_ID: null,
    MYCOMPANY_ID: null,
    CONTACT_ID: null,
    LEAD_ID: null,
    DEAL_ID: null,
    PERSON_TYPE_ID: null,
    LOCATION_ID: null,
    BEGINDATE: date,
    CLOSEDATE: null,
    ACTUAL_DATE: null,
    OPENED: 'Y',
    CLOSED: 'N',
    COMMENTS: null,
    CONTENT: null,
    TERMS: null,
    ASSIGNED_BY_ID: String(userId),
    CREATED_BY_ID: String(userId),
    MODIFY_BY_ID: String(userId),
    DATE_CREATE: date,
    DATE_MODIFY: date,
  }),
};

/** The status an invoice had when last seen, to stamp DATE_STATUS when it changes. */
const LAST_STATUS = new WeakMap<CrmItem, string>();
const STATUS_CHANGED = new WeakSet<CrmItem>();

/**
 * An old invoice as `crm.invoice.get` answers it (CORE crm classes/general/
 * restservice_invoice.php `CCrmInvoiceRestService::get`: `getInvoiceDataByID` filtered to the
 * fields `getFieldsInfo` marks `get`; DOCS:api-reference/crm/outdated/invoice/
 * crm-invoice-fields.md): the topic is ORDER_TOPIC, the amount PRICE (read-only, the sum of
 * the product rows), the links UF_DEAL_ID / UF_QUOTE_ID / UF_CONTACT_ID / UF_COMPANY_ID,
 * DATE_UPDATE where other records have DATE_MODIFY, and no modified-by field. PRODUCT_ROWS is
 * in the answer only when the invoice has rows (`getInvoiceDataByID`). PAYED is Y in the paid
 * status P (`CCrmStatusInvoice::isStatusSuccess`, `CCrmInvoice::SetStatus`). DATE_STATUS and
 * EMP_STATUS_ID follow a change of STATUS_ID (the fields page: "Date of status change", "the
 * user who last changed the invoice status"). Number formats and the status N are ours.
 */
export const INVOICE: EntityDefinition = {
  defaults: (id, userId, date) => ({
    ID: id,
    ACCOUNT_NUMBER: id,
    ORDER_TOPIC: `Invoice #${id}`,
    STATUS_ID: 'N',
    CURRENCY: 'USD',
    PRICE: '0.00',
    TAX_VALUE: '0.00',
    PAYED: 'N',
    PERSON_TYPE_ID: null,
    PAY_SYSTEM_ID: null,
    LID: 's1',
    XML_ID: null,
    COMMENTS: null,
    USER_DESCRIPTION: null,
    RESPONSIBLE_ID: String(userId),
    CREATED_BY: String(userId),
    EMP_STATUS_ID: String(userId),
    EMP_PAYED_ID: null,
    DATE_INSERT: date,
    DATE_UPDATE: date,
    DATE_STATUS: date,
    DATE_BILL: date,
    DATE_PAY_BEFORE: null,
    DATE_PAYED: null,
    DATE_MARKED: null,
    REASON_MARKED: null,
    PAY_VOUCHER_DATE: null,
    PAY_VOUCHER_NUM: null,
    IS_RECURRING: 'N',
    UF_DEAL_ID: null,
    UF_QUOTE_ID: null,
    UF_CONTACT_ID: null,
    UF_COMPANY_ID: null,
    UF_MYCOMPANY_ID: null,
  }),
  derive: (invoice: CrmItem) => {
    const status = String(invoice['STATUS_ID'] ?? 'N');
    const seen = LAST_STATUS.get(invoice);
    if (seen !== undefined && seen !== status) STATUS_CHANGED.add(invoice);
    LAST_STATUS.set(invoice, status);
    invoice['PAYED'] = status === 'P' ? 'Y' : 'N';
    const rows = invoice['PRODUCT_ROWS'];
    if (Array.isArray(rows)) {
      const sum = rows.reduce<number>(
        (acc, r: Record<string, unknown>) =>
          acc + Number(r['PRICE'] ?? 0) * Number(r['QUANTITY'] ?? 1),
        0,
      );
      invoice['PRICE'] = sum.toFixed(2);
    }
    // The store stamps a change as DATE_MODIFY / MODIFY_BY_ID (crm-store.ts update); an
    // invoice has DATE_UPDATE, and the status fields when the status moved.
    if (invoice['DATE_MODIFY'] !== undefined) {
      invoice['DATE_UPDATE'] = invoice['DATE_MODIFY'];
      if (STATUS_CHANGED.delete(invoice)) {
        invoice['DATE_STATUS'] = invoice['DATE_MODIFY'];
        invoice['EMP_STATUS_ID'] = invoice['MODIFY_BY_ID'];
      }
    }
    delete invoice['DATE_MODIFY'];
    delete invoice['MODIFY_BY_ID'];
  },
};

/**
 * The quote statuses (ENTITY_ID `QUOTE_STATUS`) and the old invoice statuses
 * (`INVOICE_STATUS`) a new portal has, as `crm.status.list` lists them (crm-status-list.md's
 * row; DOCS:api-reference/crm/quote/crm-quote-fields.md and DOCS:api-reference/crm/outdated/
 * invoice/crm-invoice-fields.md name the lists). Codes, sorts, SYSTEM, colours and SEMANTICS
 * are the core's defaults (CORE crm classes/general/crm_status.php `GetDefaultQuoteStatuses`,
 * `GetDefaultInvoiceStatuses`: DECLAINED is the core's spelling). EXTRA.SEMANTICS of a quote
 * status is `CCrmQuote::GetStatusSemantics` (crm_quote.php: APPROVED success, DECLAINED
 * failure, a status sorted after APPROVED apology, else process); invoice statuses carry no
 * EXTRA (restservice.php `CCrmStatusRestProxy::prepareExtra`). The names are lang messages
 * the mirror does not hold (CRM_QUOTE_STATUS_*, CRM_INVOICE_STATUS_*): ours, and NAME_INIT
 * (the name a system status was installed with) as the deal stages have it. The IDs are ours.
 */
export function quoteInvoiceStatuses(): StatusRow[] {
  const row = (
    id: number,
    entity: 'QUOTE_STATUS' | 'INVOICE_STATUS',
    statusId: string,
    name: string,
    sort: number,
    system: boolean,
    color: string,
    semantics: 'S' | 'F' | null,
    extra?: 'process' | 'success' | 'failure' | 'apology',
  ): StatusRow => ({
    ID: String(id),
    ENTITY_ID: entity,
    STATUS_ID: statusId,
    NAME: name,
    NAME_INIT: system ? name : '',
    SORT: String(sort),
    SYSTEM: system ? 'Y' : 'N',
    CATEGORY_ID: null,
    COLOR: color,
    SEMANTICS: semantics,
    ...(extra ? { EXTRA: { SEMANTICS: extra, COLOR: color } } : {}),
  });
  const quote = 'QUOTE_STATUS';
  const invoice = 'INVOICE_STATUS';
  return [
    row(201, quote, 'DRAFT', 'Draft', 10, true, '#39A8EF', null, 'process'),
    row(202, quote, 'SENT', 'Sent', 20, false, '#2FC6F6', null, 'process'),
    row(203, quote, 'APPROVED', 'Approved', 30, true, '#7BD500', 'S', 'success'),
    row(204, quote, 'DECLAINED', 'Declined', 40, true, '#FF5752', 'F', 'failure'),
    row(205, quote, 'APOLOGY', 'Failure analysis', 50, false, '#FF5752', 'F', 'apology'),
    row(301, invoice, 'N', 'New', 100, true, '#39A8EF', null),
    row(302, invoice, 'S', 'Sent', 110, false, '#2FC6F6', null),
    row(303, invoice, 'P', 'Paid', 130, true, '#7BD500', 'S'),
    row(304, invoice, 'D', 'Declined', 140, true, '#FF5752', 'F'),
  ];
}
