import { afterEach, describe, expect, it } from '@jest/globals';
import type { EventMap } from '../../server/rules/model.js';
import { rulesTestArgs, runCliIn } from '../helpers/cli.js';
import {
  scenarioCliEnv,
  startPaidDealScenario,
  type PaidDealScenario,
} from '../helpers/scenario.js';

/** A smart process as portals number them (custom types start at 128). */
const SPA = 128;

/** Bound at install on top of the manifest's deal events. */
const EVENTS = {
  B24_EVENTS: [
    'ONCRMDEALADD',
    'ONCRMDEALUPDATE',
    'ONCRMDYNAMICITEMADD',
    'ONCRMDYNAMICITEMUPDATE',
    'ONTASKADD',
    'ONTASKUPDATE',
  ].join(','),
};

const postTo =
  (event: string, field: string, becomes: string, text: string) =>
  (urls: { accounting: string }): EventMap => ({
    rules: [
      {
        name: `${event} ${field} → ${becomes}`,
        on: [event],
        when: [{ field, becomes }],
        actions: [
          {
            type: 'http',
            name: 'post',
            method: 'POST',
            url: `${urls.accounting}/api/notes`,
            body: { text },
          },
        ],
      },
    ],
  });

describe('enrichment of smart-process items and tasks, end to end', () => {
  let s: PaidDealScenario;
  afterEach(async () => {
    await s.close();
  });

  const events = (like: string) =>
    s.h.t.deps.db('events').where('event', 'like', like).orderBy('id');

  it('binds the smart-process and task events at install when B24_EVENTS asks for them', async () => {
    s = await startPaidDealScenario(
      postTo('ONTASKUPDATE', 'status', '5', '{{task.title}}'),
      EVENTS,
    );
    expect(s.portal.bindings.map((b) => b.event)).toEqual(
      expect.arrayContaining(['ONCRMDYNAMICITEMUPDATE', 'ONTASKUPDATE']),
    );
  });

  it('posts the item title once when the item moves to the success stage, not when it stays', async () => {
    s = await startPaidDealScenario(
      postTo('ONCRMDYNAMICITEMUPDATE', 'stageId', `DT${SPA}_1:SUCCESS`, 'Done: {{item.title}}'),
      EVENTS,
    );
    const item = await s.portal.addItem(SPA, { title: 'Project Alpha' });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateItem(SPA, item.id, { stageId: `DT${SPA}_1:SUCCESS` });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
    expect(JSON.parse(s.accounting.requests[0]!.body)).toEqual({ text: 'Done: Project Alpha' });

    s.shiftPortalTime(2000);
    await s.portal.updateItem(SPA, item.id, { title: 'Project Alpha (closed)' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);

    const rows = await events('ONCRMDYNAMICITEM%');
    expect(rows.map((e) => [e.event, e.entity_type, e.entity_id, e.status])).toEqual([
      ['ONCRMDYNAMICITEMADD', `dynamic:${SPA}`, item.id, 'skipped'],
      ['ONCRMDYNAMICITEMUPDATE', `dynamic:${SPA}`, item.id, 'processed'],
      ['ONCRMDYNAMICITEMUPDATE', `dynamic:${SPA}`, item.id, 'skipped'],
    ]);
    expect(rows.at(-1).last_error).toMatch(/stageId was already/);
    expect(s.portal.calls.filter((c) => c.method === 'crm.item.get').length).toBeGreaterThan(0);
  });

  /**
   * crm.item.update echoes twice when the portal binds both ONCRMDYNAMICITEMUPDATE and the
   * per-type ONCRMDYNAMICITEMUPDATE_128 (the emulator sends both, as Bitrix24 does:
   * DOCS api-reference/crm/universal/events/index.md). The write was remembered once, the
   * per-type echo (no rule) took it, and the other echo read as a person's change: the rule
   * wrote again.
   */
  it("does not let an item's own write come back through its per-type event as a person's", async () => {
    s = await startPaidDealScenario(
      () => ({
        rules: [
          {
            name: 'Tag urgent items',
            on: ['ONCRMDYNAMICITEMUPDATE'],
            when: [{ field: 'title', equals: 'Urgent' }],
            actions: [
              {
                type: 'bitrix',
                method: 'crm.item.update',
                params: {
                  entityTypeId: SPA,
                  id: '{{item.id}}',
                  fields: { comments: 'tagged {{event.id}}' },
                },
              },
            ],
          },
        ],
      }),
      { B24_EVENTS: `ONCRMDYNAMICITEMUPDATE,ONCRMDYNAMICITEMUPDATE_${SPA}` },
    );
    const item = await s.portal.addItem(SPA, { title: 'Calm' });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateItem(SPA, item.id, { title: 'Urgent' });
    for (let i = 0; i < 4; i++) {
      s.shiftPortalTime(2000);
      await s.drain();
    }
    expect(s.portal.calls.filter((c) => c.method === 'crm.item.update')).toHaveLength(1);
    const rows = await events('ONCRMDYNAMICITEMUPDATE%');
    // Control: both events came for the person's change and for the rule's write.
    expect(rows.map((e) => e.event).sort()).toEqual([
      'ONCRMDYNAMICITEMUPDATE',
      'ONCRMDYNAMICITEMUPDATE',
      `ONCRMDYNAMICITEMUPDATE_${SPA}`,
      `ONCRMDYNAMICITEMUPDATE_${SPA}`,
    ]);
  });

  it('posts the task title once when the task is completed, not when it is edited afterwards', async () => {
    s = await startPaidDealScenario(
      postTo('ONTASKUPDATE', 'status', '5', '{{task.title}}'),
      EVENTS,
    );
    const task = await s.portal.addTask({ TITLE: 'Call the client', RESPONSIBLE_ID: 1 });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateTask(task.id, { STATUS: 3 });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(0);

    s.shiftPortalTime(2000);
    await s.portal.updateTask(task.id, { STATUS: 5 });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateTask(task.id, { DESCRIPTION: 'Called, all fine' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
    expect(JSON.parse(s.accounting.requests[0]!.body)).toEqual({ text: 'Call the client' });

    const rows = await events('ONTASK%');
    expect(rows.map((e) => [e.event, e.entity_type, e.entity_id, e.status])).toEqual([
      ['ONTASKADD', 'task', task.id, 'skipped'],
      ['ONTASKUPDATE', 'task', task.id, 'skipped'],
      ['ONTASKUPDATE', 'task', task.id, 'processed'],
      ['ONTASKUPDATE', 'task', task.id, 'skipped'],
    ]);
  });

  /**
   * tasks.task.get with `select: ['*']` leaves out every user field, ufCrmTask (the deals and
   * contacts the task is bound to) among them: a rule on a task's deal never saw it on a real
   * portal, while the emulator answered every field to `*`.
   */
  it("reads a task's user fields: the CRM records it is bound to reach the rule", async () => {
    s = await startPaidDealScenario(
      postTo('ONTASKUPDATE', 'status', '5', '{{task.title}} for {{task.ufCrmTask}}'),
      EVENTS,
    );
    const task = await s.portal.addTask({ TITLE: 'Send the contract', UF_CRM_TASK: ['D_12'] });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateTask(task.id, { STATUS: 5 });
    await s.drain();
    expect(s.accounting.requests.map((r) => JSON.parse(r.body))).toEqual([
      { text: 'Send the contract for ["D_12"]' },
    ]);
    const reads = s.portal.calls.filter((c) => c.method === 'tasks.task.get');
    expect(reads.length).toBeGreaterThan(0);
  });

  it('skips an item event whose item was deleted before processing, with the reason', async () => {
    s = await startPaidDealScenario(
      postTo('ONCRMDYNAMICITEMUPDATE', 'stageId', `DT${SPA}_1:SUCCESS`, '{{item.title}}'),
      EVENTS,
    );
    await s.portal.emit('ONCRMDYNAMICITEMUPDATE', { FIELDS: { ID: 999, ENTITY_TYPE_ID: SPA } });
    await s.drain();
    const row = (await events('ONCRMDYNAMICITEMUPDATE')).at(-1);
    expect(row).toMatchObject({ status: 'skipped', entity_type: `dynamic:${SPA}` });
    expect(row.last_error).toMatch(/no longer exists/);
  });

  it('skips a task event whose task is gone (tasks.task.get answers an empty result)', async () => {
    s = await startPaidDealScenario(
      postTo('ONTASKUPDATE', 'status', '5', '{{task.title}}'),
      EVENTS,
    );
    await s.portal.emit('ONTASKUPDATE', {
      FIELDS_BEFORE: { ID: 77 },
      FIELDS_AFTER: { ID: 77 },
      IS_ACCESSIBLE_BEFORE: 'undefined',
      IS_ACCESSIBLE_AFTER: 'undefined',
    });
    await s.drain();
    const row = (await events('ONTASKUPDATE')).at(-1);
    expect(row).toMatchObject({ status: 'skipped', entity_type: 'task', entity_id: '77' });
    expect(row.last_error).toMatch(/no longer exists/);
  });

  it('dry-runs a smart-process rule with the per-type event name (rules test)', async () => {
    s = await startPaidDealScenario(
      postTo('ONCRMDYNAMICITEMUPDATE', 'stageId', `DT${SPA}_1:SUCCESS`, 'Done: {{item.title}}'),
      EVENTS,
    );
    const item = await s.portal.addItem(SPA, { title: 'Project Beta' });
    await s.drain();
    await s.portal
      .updateItem(SPA, item.id, { stageId: `DT${SPA}_1:SUCCESS` })
      .catch(() => undefined);
    const r = await runCliIn(
      s.h.t,
      [...rulesTestArgs(s.portal.memberId, `ONCRMDYNAMICITEMUPDATE_${SPA}`, item.id), '--json'],
      scenarioCliEnv(s),
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.entity).toEqual({ type: `dynamic:${SPA}`, id: item.id });
    expect(doc.rules[0]).toMatchObject({ matched: true });
    expect(doc.rules[0].steps[0].rendered.body).toEqual({ text: 'Done: Project Beta' });
  });
});
