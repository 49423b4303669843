import type { EventMap } from '../../server/rules/model.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { uiTestMap } from './ui-harness.js';

/**
 * A portal's own map as an admin writes it: a long rule name that runs on the won deal (so it
 * shows in the dashboard's figures and the log's rule filter), five trigger events, several
 * conditions on custom fields with long codes and values, steps to long URLs, an address and
 * a REST method, and a rule named as one word; then the two rules the deals are seeded for.
 */
export function longRulesMap(sinkUrl: string): EventMap {
  const v = validateEventMap({
    rules: [
      {
        name: 'Paid deal in the wholesale pipeline: invoice to accounting, shipment to logistics, SMS to the customer',
        on: [
          'ONCRMDEALUPDATE',
          'ONCRMDEALADD',
          'ONCRMINVOICEUPDATE',
          'ONCRMCONTACTUPDATE',
          'ONCRMCOMPANYUPDATE',
        ],
        when: [
          { field: 'STAGE_ID', becomes: 'WON' },
          { field: 'OPPORTUNITY', in: ['100', '250000', '1250000'] },
          { field: 'TITLE', equals: 'Won order' },
        ],
        actions: [
          {
            type: 'http',
            name: 'create_invoice_in_accounting_system',
            method: 'POST',
            url: `${sinkUrl}/api/v2/accounting/organisations/main-office/invoices/create-from-crm-deal?source=bitrix24&notify=true`,
            body: { dealId: '{{deal.ID}}' },
          },
          {
            type: 'http',
            name: 'shipment',
            method: 'POST',
            url: `${sinkUrl}/logistics/shipments`,
            body: { dealId: '{{deal.ID}}' },
          },
        ],
        slaSeconds: 3600,
      },
      {
        name: 'notify_regional_warehouse_about_deliveries_over_one_million',
        on: ['ONCRMDEALUPDATE', 'ONCRMDYNAMICITEMUPDATE_1038'],
        when: [
          { field: 'UF_CRM_1712345678901_DELIVERY_REGION', in: ['north-west-federal-district'] },
          { field: 'UF_CRM_1712345678902_WAREHOUSE_CODE', changed: true },
          { field: 'CURRENCY_ID', equals: 'RUB' },
        ],
        actions: [
          {
            type: 'http',
            method: 'PUT',
            url: 'https://warehouse-gateway.north-west-region.logistics-partner-company.example/api/v3/deliveries',
            body: { dealId: '{{deal.ID}}' },
          },
          {
            type: 'email',
            to: 'regional.warehouse.north-west@logistics-partner-company.example',
            subject: 'Delivery {{deal.ID}}',
            text: 'Deal {{deal.ID}}',
          },
          {
            type: 'bitrix',
            method: 'crm.timeline.comment.add',
            params: { fields: { ENTITY_ID: '{{deal.ID}}', ENTITY_TYPE: 'deal', COMMENT: 'x' } },
          },
        ],
      },
      ...uiTestMap(sinkUrl).rules,
    ],
  });
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.map;
}
