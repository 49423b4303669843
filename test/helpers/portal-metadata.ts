import type { PortalMetadata, StageInfo } from '../../server/rules/metadata.js';

const status = (id: string, name: string): StageInfo => ({
  id,
  name,
  categoryId: 0,
  semantics: 'P',
});

/**
 * The builder's metadata of a portal with no fields and no users: the general deal pipeline,
 * and the quote and old invoice statuses the emulated portal lists (test/emulator/
 * crm-quote-invoice.ts), for the pages' names of codes. `more` replaces any part.
 */
export function portalMetadata(more: Partial<PortalMetadata> = {}): PortalMetadata {
  return {
    entities: {
      deal: [],
      lead: [],
      contact: [],
      company: [],
      activity: [],
      quote: [],
      invoice: [],
    },
    categories: [{ id: 0, name: 'General', isDefault: true }],
    stages: [status('NEW', 'New'), status('WON', 'Deal won')],
    leadStages: [status('CONVERTED', 'Good lead')],
    quoteStatuses: [
      status('DRAFT', 'Draft'),
      status('SENT', 'Sent'),
      status('APPROVED', 'Approved'),
      status('DECLAINED', 'Declined'),
    ],
    invoiceStatuses: [
      status('N', 'New'),
      status('S', 'Sent'),
      status('P', 'Paid'),
      status('D', 'Declined'),
    ],
    users: [],
    missing: [],
    loadedAt: 0,
    ...more,
  };
}
