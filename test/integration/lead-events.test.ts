import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { EventMap } from '../../server/rules/model.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * Leads end to end (ONCRMLEADADD / ONCRMLEADUPDATE, offered on the subscriptions page):
 * the event carries only the lead's ID, the worker reads it with crm.lead.get, a condition on
 * its stage and a template of its fields decide and shape the step. Until the emulator had
 * leads (DOCS:api-reference/crm/leads/crm-lead-get.md), nothing tested this path.
 */
describe('lead events', () => {
  let s: PaidDealScenario;
  const map = (urls: { accounting: string }): EventMap => ({
    rules: [
      {
        name: 'Converted lead to the ERP',
        on: ['ONCRMLEADUPDATE'],
        when: [{ field: 'STATUS_ID', becomes: 'CONVERTED' }],
        actions: [
          {
            type: 'http',
            method: 'POST',
            url: `${urls.accounting}/leads`,
            body: {
              leadId: '{{lead.ID}}',
              title: '{{lead.TITLE}}',
              amount: '{{lead.OPPORTUNITY}}',
            },
          },
        ],
      },
    ],
  });
  beforeEach(async () => {
    s = await startPaidDealScenario(map, {
      B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMLEADADD,ONCRMLEADUPDATE',
    });
  });
  afterEach(async () => {
    await s.close();
  });

  it('reads the lead and sends its fields once it becomes converted, and not before', async () => {
    const lead = await s.portal.addLead({ TITLE: 'Website form', OPPORTUNITY: 250 });
    await s.drain();
    await s.portal.updateLead(lead.id, { STATUS_ID: 'IN_PROCESS' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(0);
    // A later second on the portal: two changes within one second come as one delivery.
    s.shiftPortalTime(2000);
    await s.portal.updateLead(lead.id, { STATUS_ID: 'CONVERTED' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
    expect(JSON.parse(s.accounting.requests[0]!.body)).toEqual({
      leadId: lead.id,
      title: 'Website form',
      amount: '250.00',
    });
    const rows = await s.h.t.deps.db('events').where('event', 'like', 'ONCRMLEAD%').orderBy('id');
    expect(rows.map((e) => [e.event, e.entity_type, e.entity_id, e.status])).toEqual([
      ['ONCRMLEADADD', 'lead', lead.id, 'skipped'],
      ['ONCRMLEADUPDATE', 'lead', lead.id, 'skipped'],
      ['ONCRMLEADUPDATE', 'lead', lead.id, 'processed'],
    ]);
    // Read as the portal has it: a converted lead is a success (STATUS_SEMANTIC_ID S).
    expect(s.portal.leads.get(lead.id)).toMatchObject({ STATUS_SEMANTIC_ID: 'S' });
    expect(s.portal.calls.filter((c) => c.method === 'crm.lead.get').length).toBeGreaterThan(0);
  });
});
