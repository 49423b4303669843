import type { Knex } from 'knex';
import type { Condition, EventMap } from '../../server/rules/model.js';

/** One rule: on `event`, when `when`, POST `body` to the accounting stand-in's `path`. */
export const postOn =
  (name: string, event: string, when: Condition[], path: string, body: Record<string, string>) =>
  (urls: { accounting: string }): EventMap => ({
    rules: [
      {
        name,
        on: [event],
        when,
        actions: [{ type: 'http', method: 'POST', url: `${urls.accounting}${path}`, body }],
      },
    ],
  });

/** The stored events whose name is `like` (SQL LIKE), oldest first. */
export const eventRows = async (db: Knex, like: string) =>
  (await db('events').where('event', 'like', like).orderBy('id')) as Array<{
    event: string;
    entity_type: string;
    entity_id: string;
    status: string;
    attempts: number;
    last_error: string | null;
  }>;

/**
 * An old invoice's fields as crm.invoice.add takes them (CCrmInvoice::CheckFields wants a
 * status, a payment system, and a payer: give UF_CONTACT_ID or UF_COMPANY_ID in `more`).
 */
export const invoiceFields = (more: Record<string, unknown> = {}) => ({
  ORDER_TOPIC: 'Website, stage 1',
  STATUS_ID: 'N',
  PERSON_TYPE_ID: 1,
  PAY_SYSTEM_ID: 2,
  PRODUCT_ROWS: [{ PRODUCT_ID: 0, PRODUCT_NAME: 'Design', PRICE: 300, QUANTITY: 2 }],
  ...more,
});
