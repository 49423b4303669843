import { afterEach, describe, expect, it } from '@jest/globals';
import { eventRows, postOn } from '../helpers/record-rules.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * Records other than deals, end to end: events the subscriptions page offers carry only the
 * record's ID and the worker reads it (crm.lead.get, crm.activity.get); a condition on its
 * fields and a template of them decide and shape the step. Until the emulator had leads and
 * activities, nothing tested these paths.
 */

let s: PaidDealScenario;
afterEach(async () => {
  await s?.close();
});
const rowsOf = (like: string) => eventRows(s.h.t.deps.db, like);

describe('lead events (ONCRMLEADADD / ONCRMLEADUPDATE; DOCS:api-reference/crm/leads/crm-lead-get.md)', () => {
  it('reads the lead and sends its fields once it becomes converted, and not before', async () => {
    s = await startPaidDealScenario(
      postOn(
        'Converted lead to the ERP',
        'ONCRMLEADUPDATE',
        [{ field: 'STATUS_ID', becomes: 'CONVERTED' }],
        '/leads',
        { leadId: '{{lead.ID}}', title: '{{lead.TITLE}}', amount: '{{lead.OPPORTUNITY}}' },
      ),
      { B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMLEADADD,ONCRMLEADUPDATE' },
    );
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
    const rows = await rowsOf('ONCRMLEAD%');
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

/**
 * DOCS:api-reference/crm/timeline/activities/activity-base/crm-activity-get.md. An activity
 * deleted before it was read failed its event: crm.activity.get answers a missing one with
 * an empty 400, not "Not found" as the other records do (server/processing/entity-reader.ts).
 */
describe('activity events (ONCRMACTIVITYADD)', () => {
  const start = () =>
    startPaidDealScenario(
      postOn(
        'Calls to the call log',
        'ONCRMACTIVITYADD',
        [{ field: 'PROVIDER_TYPE_ID', equals: 'CALL' }],
        '/calls',
        {
          activityId: '{{activity.ID}}',
          subject: '{{activity.SUBJECT}}',
          dealId: '{{activity.OWNER_ID}}',
        },
      ),
      { B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMACTIVITYADD' },
    );

  it('reads the activity and sends a call’s fields; a meeting does not match', async () => {
    s = await start();
    const deal = await s.portal.addDeal({ TITLE: 'Call me' });
    const owner = { OWNER_TYPE_ID: 2, OWNER_ID: deal.id };
    const call = await s.portal.addActivity({ ...owner, TYPE_ID: 2, SUBJECT: 'About the invoice' });
    await s.portal.addActivity({ ...owner, TYPE_ID: 1, SUBJECT: 'Visit' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
    expect(JSON.parse(s.accounting.requests[0]!.body)).toEqual({
      activityId: call.id,
      subject: 'About the invoice',
      dealId: deal.id,
    });
    expect((await rowsOf('ONCRMACTIVITY%')).map((e) => [e.entity_type, e.status])).toEqual([
      ['activity', 'processed'],
      ['activity', 'skipped'],
    ]);
    expect(s.portal.calls.filter((c) => c.method === 'crm.activity.get').length).toBeGreaterThan(0);
  });

  it('reads another app’s configurable activity, which crm.activity.get refuses, from crm.activity.list', async () => {
    s = await start();
    const deal = await s.portal.addDeal({ TITLE: 'Delivery' });
    const owner = { OWNER_TYPE_ID: 2, OWNER_ID: deal.id };
    const configurable = await s.portal.addActivity({
      ...owner,
      TYPE_ID: 6,
      PROVIDER_ID: 'CONFIGURABLE_REST_APP',
      PROVIDER_TYPE_ID: 'CALL',
      SUBJECT: 'Courier called',
    });
    await s.drain();
    expect(JSON.parse(s.accounting.requests[0]!.body)).toEqual({
      activityId: configurable.id,
      subject: 'Courier called',
      dealId: deal.id,
    });
    expect((await rowsOf('ONCRMACTIVITY%')).map((e) => e.status)).toEqual(['processed']);
    expect(s.portal.calls.map((c) => c.method)).toContain('crm.activity.list');
  });

  it('sends a call once it is completed (ONCRMACTIVITYUPDATE, offered on the subscriptions page)', async () => {
    s = await startPaidDealScenario(
      postOn(
        'Completed calls',
        'ONCRMACTIVITYUPDATE',
        [{ field: 'COMPLETED', becomes: 'Y' }],
        '/done',
        { activityId: '{{activity.ID}}', status: '{{activity.STATUS}}' },
      ),
      { B24_EVENTS: 'ONCRMDEALADD,ONCRMACTIVITYADD,ONCRMACTIVITYUPDATE' },
    );
    const deal = await s.portal.addDeal({ TITLE: 'Call me' });
    const call = await s.portal.addActivity({ OWNER_TYPE_ID: 2, OWNER_ID: deal.id, TYPE_ID: 2 });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateActivity(call.id, { SUBJECT: 'Renamed' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(0);
    s.shiftPortalTime(2000);
    await s.portal.updateActivity(call.id, { COMPLETED: 'Y' });
    await s.drain();
    expect(s.accounting.requests.map((r) => JSON.parse(r.body))).toEqual([
      { activityId: call.id, status: '2' },
    ]);
  });

  it('skips the event of an activity deleted before it was read, instead of failing it', async () => {
    s = await start();
    const deal = await s.portal.addDeal({ TITLE: 'Call me' });
    await s.drain();
    const call = await s.portal.addActivity({ OWNER_TYPE_ID: 2, OWNER_ID: deal.id, TYPE_ID: 2 });
    // Stored, then deleted on the portal before the worker reads it.
    await s.portal.whenIdle();
    await s.h.services.intake.drain();
    await s.portal.deleteActivity(call.id);
    await s.drain();
    expect(s.portal.activities.has(call.id)).toBe(false);
    const [added] = await rowsOf('ONCRMACTIVITY%');
    expect(added).toMatchObject({ entity_id: call.id, status: 'skipped' });
    expect(added!.last_error).toMatch(/no longer exists/);
    expect(s.accounting.requests).toHaveLength(0);
  });
});
