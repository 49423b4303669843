import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import qs from 'qs';
import {
  startEmulator,
  type BitrixEmulator,
  type EmulatedPortal,
} from '../emulator/bitrix-emulator.js';
import { startRecordingReceiver, type RecordingReceiver } from '../emulator/recording-receiver.js';

interface Answer {
  status: number;
  json: Record<string, unknown> & { result?: unknown; error?: string };
}

type Delivery = { event: string; data: Record<string, unknown> };

describe('smart-process items and tasks on the emulated portal', () => {
  const clock = Date.UTC(2026, 10, 27, 7, 0, 0);
  let emu: BitrixEmulator;
  let portal: EmulatedPortal;
  let receiver: RecordingReceiver;
  let admin: string;

  const call = async (method: string, params: object = {}): Promise<Answer> => {
    const res = await fetch(`${portal.clientEndpoint}${method}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ...params, auth: admin }),
    });
    return { status: res.status, json: (await res.json()) as Answer['json'] };
  };
  const deliveries = (event: string): Delivery[] =>
    receiver.requests
      .map((r) => qs.parse(r.body, { depth: 5 }) as unknown as Delivery)
      .filter((d) => d.event === event);

  beforeAll(async () => {
    emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret', now: () => clock });
    portal = await emu.addPortal({ installed: true });
    receiver = await startRecordingReceiver();
    admin = portal.issueUserAuth(1).accessToken;
    for (const event of [
      'ONCRMDYNAMICITEMADD',
      'onCrmDynamicItemUpdate',
      'ONCRMDYNAMICITEMUPDATE_128',
      'ONTASKADD',
      'ONTASKUPDATE',
    ]) {
      const bound = await call('event.bind', { event, handler: `${receiver.url}/events` });
      expect(bound.json.result).toBe(true);
    }
  });

  afterAll(async () => {
    await emu.close();
    await receiver.close();
  });

  it('adds, reads and updates an item in camelCase, wrapped in {item}', async () => {
    const added = await call('crm.item.add', {
      entityTypeId: 128,
      fields: { title: 'Alpha', OPPORTUNITY: '250.5' },
    });
    const item = (added.json.result as { item: Record<string, unknown> }).item;
    expect(item).toMatchObject({
      id: 1,
      entityTypeId: 128,
      title: 'Alpha',
      opportunity: 250.5,
      stageId: 'DT128_1:NEW',
      stageSemanticId: 'P',
      categoryId: 1,
    });
    await call('crm.item.update', {
      entityTypeId: 128,
      id: 1,
      fields: { stageId: 'DT128_1:SUCCESS' },
    });
    const got = await call('crm.item.get', { entityTypeId: 128, id: 1 });
    expect((got.json.result as { item: unknown }).item).toMatchObject({
      stageId: 'DT128_1:SUCCESS',
      previousStageId: 'DT128_1:NEW',
      stageSemanticId: 'S',
    });
    const list = await call('crm.item.list', { entityTypeId: 128, filter: { stageId: 'x' } });
    expect(list.json).toMatchObject({ result: { items: [] }, total: 0 });
  });

  it('answers a missing item with 400 NOT_FOUND', async () => {
    const res = await call('crm.item.get', { entityTypeId: 128, id: 404 });
    expect(res.status).toBe(400);
    expect(res.json.error).toBe('NOT_FOUND');
  });

  it('fires ONCRMDYNAMICITEM* with FIELDS[ID] and FIELDS[ENTITY_TYPE_ID], plain and per type, and none for a no-op update', async () => {
    const change = await portal.addItem(130, { title: 'Beta' });
    expect(change.deliveries.map((d) => d.event)).toEqual(['ONCRMDYNAMICITEMADD']);
    await portal.updateItem(128, 1, { title: 'Alpha 2' });
    const none = await portal.updateItem(128, 1, { title: 'Alpha 2' });
    expect(none.deliveries).toEqual([]);
    await portal.whenIdle();
    expect(deliveries('ONCRMDYNAMICITEMADD').at(-1)?.data).toEqual({
      FIELDS: { ID: '1', ENTITY_TYPE_ID: '130' },
    });
    expect(deliveries('ONCRMDYNAMICITEMUPDATE_128').at(-1)?.data).toEqual({
      FIELDS: { ID: '1', ENTITY_TYPE_ID: '128' },
    });
  });

  it('adds, reads and updates a task, wrapped in {task}; a missing task reads as an empty result', async () => {
    const added = await call('tasks.task.add', { fields: { TITLE: 'Call', RESPONSIBLE_ID: 2 } });
    const task = (added.json.result as { task: Record<string, unknown> }).task;
    expect(task).toMatchObject({ id: '1', title: 'Call', responsibleId: '2', status: '2' });
    await call('tasks.task.update', { taskId: 1, fields: { STATUS: 5 } });
    const got = await call('tasks.task.get', { taskId: 1, select: ['ID', 'TITLE', 'STATUS'] });
    expect(got.json.result).toEqual({ task: { id: '1', title: 'Call', status: '5' } });
    expect((await call('tasks.task.get', { taskId: 999 })).json.result).toEqual([]);
    const bad = await call('tasks.task.update', { taskId: 1, fields: { STATUS: 9 } });
    expect(bad.json.error).toBe('ERROR_CORE');
  });

  it('fires ONTASKADD / ONTASKUPDATE with the ID on each side and "undefined" for a missing side', async () => {
    await portal.addTask({ TITLE: 'Write report' });
    await portal.updateTask(1, { TITLE: 'Call back' });
    await portal.whenIdle();
    expect(deliveries('ONTASKADD').at(-1)?.data).toEqual({
      FIELDS_BEFORE: 'undefined',
      FIELDS_AFTER: { ID: '2' },
      IS_ACCESSIBLE_BEFORE: 'N',
      IS_ACCESSIBLE_AFTER: 'undefined',
    });
    expect(deliveries('ONTASKUPDATE').at(-1)?.data).toEqual({
      FIELDS_BEFORE: { ID: '1' },
      FIELDS_AFTER: { ID: '1' },
      IS_ACCESSIBLE_BEFORE: 'undefined',
      IS_ACCESSIBLE_AFTER: 'undefined',
    });
  });

  it("names custom fields in REST as the portal does (the doc's regular and simplified rules)", async () => {
    // DOCS:api-reference/crm/universal/index.md, "Field Naming Conventions", its table.
    const added = await call('crm.item.add', {
      entityTypeId: 128,
      fields: {
        title: 'Custom',
        UF_CRM_3_DIGIT: 'a',
        UF_CRM_3_1747309727: 'b',
        UF_CRM_3_DIGIT10: 'c',
        UF_CRM_3_DIGIT_10: 'd',
        UF_CRM_1747309879: 'e',
        ASSIGNED_BY_ID: 1,
      },
    });
    const item = (added.json.result as { item: Record<string, unknown> }).item;
    expect(item).toMatchObject({
      ufCrm3Digit: 'a',
      ufCrm3_1747309727: 'b',
      ufCrm_3_DIGIT10: 'c',
      ufCrm_3_DIGIT_10: 'd',
      ufCrm_1747309879: 'e',
      assignedById: 1,
    });
  });

  it('answers user fields (ufCrmTask) only when a UF_ name is selected, then with every field', async () => {
    const added = await call('tasks.task.add', {
      fields: { TITLE: 'Contract', UF_CRM_TASK: ['D_7', 'C_3'] },
    });
    const id = (added.json.result as { task: { id: string } }).task.id;
    const task = async (select?: string[]) =>
      (
        (await call('tasks.task.get', { taskId: id, ...(select ? { select } : {}) })).json
          .result as { task: Record<string, unknown> }
      ).task;
    for (const plain of [undefined, ['*']]) {
      const t = await task(plain);
      expect(t).toMatchObject({ id, title: 'Contract' });
      expect(t).not.toHaveProperty('ufCrmTask');
    }
    expect(await task(['*', 'UF_CRM_TASK'])).toMatchObject({
      title: 'Contract',
      responsibleId: expect.any(String),
      ufCrmTask: ['D_7', 'C_3'],
    });
    expect(await task(['ID', 'UF_CRM_TASK'])).toEqual({ id, ufCrmTask: ['D_7', 'C_3'] });
  });
});
