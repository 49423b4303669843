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
  json: Record<string, unknown> & {
    result?: unknown;
    error?: string;
    error_description?: string;
  };
}

async function rest(base: string, method: string, params: object = {}): Promise<Answer> {
  const res = await fetch(`${base}${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(params),
  });
  return { status: res.status, json: (await res.json()) as Answer['json'] };
}

describe('REST API of the emulated portal', () => {
  let clock = Date.UTC(2026, 10, 27, 7, 0, 0);
  let emu: BitrixEmulator;
  let portal: EmulatedPortal;
  let admin: string;
  let manager: string;
  let receiver: RecordingReceiver;
  const call = (method: string, params: object = {}, auth = admin): Promise<Answer> =>
    rest(portal.clientEndpoint, method, { ...params, auth });

  beforeAll(async () => {
    emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret', now: () => clock });
    portal = await emu.addPortal({ installed: true });
    receiver = await startRecordingReceiver();
    admin = portal.issueUserAuth(1).accessToken;
    manager = portal.issueUserAuth(2).accessToken;
    for (let i = 1; i <= 120; i += 1) {
      await portal.addDeal({ TITLE: `Deal ${i}`, STAGE_ID: i % 2 === 0 ? 'WON' : 'NEW' });
    }
  });

  afterAll(async () => {
    await emu.close();
    await receiver.close();
  });

  it('accepts double slashes, .json suffixes, any case and a Bearer header', async () => {
    const viaSdkPath = await rest(`${portal.url}/rest//`, 'profile', { auth: admin });
    expect(viaSdkPath.json.result).toEqual(expect.objectContaining({ ID: '1', ADMIN: true }));
    const res = await fetch(`${portal.clientEndpoint}USER.Admin.json`, {
      headers: { Authorization: `Bearer ${manager}` },
    });
    expect(await res.json()).toEqual(expect.objectContaining({ result: false }));
  });

  it('gives an app with user_brief the name fields of a user, without EMAIL', async () => {
    const [user] = (await call('user.get', { ID: 1 })).json.result as Array<
      Record<string, unknown>
    >;
    expect(user).toMatchObject({ ID: '1', NAME: expect.any(String) });
    expect(user).not.toHaveProperty('EMAIL');
    // Control: a portal whose app has user_basic gets it.
    const basic = await emu.addPortal({ installed: true, scope: 'crm,user_basic' });
    const token = basic.issueUserAuth(1).accessToken;
    const me = await rest(basic.clientEndpoint, 'user.current', { auth: token });
    expect(me.json.result).toHaveProperty('EMAIL');
  });

  it('answers 404 ERROR_METHOD_NOT_FOUND for an unknown method and 401 without auth', async () => {
    expect((await call('crm.nothing.here')).status).toBe(404);
    const none = await rest(portal.clientEndpoint, 'profile');
    expect(none.status).toBe(401);
    expect(none.json.error).toBe('NO_AUTH_FOUND');
    const garbage = await call('profile', {}, 'not-a-token');
    expect(garbage.json.error).toBe('invalid_token');
    // The method is looked up first (CORE classes/general/rest.php `process`): an unknown
    // one is a 404 whatever the auth, a known one with no auth a 401.
    const unknownNoAuth = await rest(portal.clientEndpoint, 'crm.nothing.here');
    expect([unknownNoAuth.status, unknownNoAuth.json.error]).toEqual([
      404,
      'ERROR_METHOD_NOT_FOUND',
    ]);
    expect((await call('crm.nothing.here', {}, 'not-a-token')).status).toBe(404);
  });

  it("lists an activity's bindings: its owner, its communications' records, one bound later", async () => {
    const added = await call('crm.activity.add', {
      fields: {
        OWNER_TYPE_ID: 3,
        OWNER_ID: 7,
        TYPE_ID: 2,
        SUBJECT: 'Incoming',
        COMMUNICATIONS: [
          { VALUE: '+100', ENTITY_TYPE_ID: 3, ENTITY_ID: 7 },
          { VALUE: '+200', ENTITY_TYPE_ID: 4, ENTITY_ID: 12 },
        ],
      },
    });
    const activityId = added.json.result as number;
    const list = async () =>
      (await call('crm.activity.binding.list', { activityId })).json.result as unknown[];
    expect(await list()).toEqual([
      { entityTypeId: 3, entityId: 7 },
      { entityTypeId: 4, entityId: 12 },
    ]);
    const bound = await call('crm.activity.binding.add', {
      activityId,
      entityTypeId: 2,
      entityId: 5,
    });
    expect(bound.json.result).toBe(true);
    expect(await list()).toContainEqual({ entityTypeId: 2, entityId: 5 });
    const again = await call('crm.activity.binding.add', {
      activityId,
      entityTypeId: 2,
      entityId: 5,
    });
    expect([again.status, again.json.error]).toEqual([400, 'ACTIVITY_IS_ALREADY_BOUND']);
    // What internalizeCommunications drops: a call's e-mail, a call's communication without
    // a value; one without a record is the owner's.
    const sorted = await call('crm.activity.add', {
      fields: {
        OWNER_TYPE_ID: 2,
        OWNER_ID: 9,
        TYPE_ID: 2,
        SUBJECT: 'Sorted',
        COMMUNICATIONS: [
          { VALUE: '+300' },
          { VALUE: 'a@b.c', TYPE: 'EMAIL', ENTITY_TYPE_ID: 3, ENTITY_ID: 8 },
          { VALUE: '', ENTITY_TYPE_ID: 4, ENTITY_ID: 13 },
        ],
      },
    });
    expect(
      (await call('crm.activity.binding.list', { activityId: sorted.json.result })).json.result,
    ).toEqual([{ entityTypeId: 2, entityId: 9 }]);
    const missing = await call('crm.activity.binding.list', { activityId: 999999 });
    expect([missing.status, missing.json.error]).toEqual([400, 'NOT_FOUND']);
  });

  it("keeps an activity's owner among its bindings when an update gives new communications alone", async () => {
    const added = await call('crm.activity.add', {
      fields: {
        OWNER_TYPE_ID: 2,
        OWNER_ID: 5,
        TYPE_ID: 2,
        SUBJECT: 'Call',
        COMMUNICATIONS: [{ VALUE: '+100', ENTITY_TYPE_ID: 3, ENTITY_ID: 7 }],
      },
    });
    const id = added.json.result as number;
    // innerUpdate binds the current owner (the update names none) and the new communications.
    await call('crm.activity.update', {
      id,
      fields: { COMMUNICATIONS: [{ VALUE: '+200', ENTITY_TYPE_ID: 4, ENTITY_ID: 12 }] },
    });
    const list = await call('crm.activity.binding.list', { activityId: id });
    expect(list.json.result).toEqual([
      { entityTypeId: 2, entityId: 5 },
      { entityTypeId: 4, entityId: 12 },
    ]);
  });

  it('answers crm.deal.get for a missing deal with 400 and an empty error code', async () => {
    const res = await call('crm.deal.get', { id: 99999 });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ error: '', error_description: 'Not found' });
  });

  it('keeps activities: add checks the type and communications, a missing one reads as an empty 400', async () => {
    const owner = { OWNER_TYPE_ID: 2, OWNER_ID: 3 };
    const noComms = await call('crm.activity.add', {
      fields: { ...owner, TYPE_ID: 2, SUBJECT: 'Call back' },
    });
    expect(noComms.json).toEqual({
      error: '',
      error_description: 'The field COMMUNICATIONS is not defined or invalid.',
    });
    const task = await call('crm.activity.add', {
      fields: { ...owner, TYPE_ID: 3, COMMUNICATIONS: [{ VALUE: '+100' }] },
    });
    expect(task.json.error_description).toMatch(/not supported in current context/);
    const added = await call('crm.activity.add', {
      fields: { ...owner, TYPE_ID: 2, SUBJECT: 'Call back', COMMUNICATIONS: [{ VALUE: '+100' }] },
    });
    const id = added.json.result as number;
    const got = (await call('crm.activity.get', { id })).json.result as Record<string, unknown>;
    expect(got).toMatchObject({
      ID: String(id),
      OWNER_TYPE_ID: '2',
      OWNER_ID: '3',
      TYPE_ID: '2',
      PROVIDER_ID: 'VOXIMPLANT_CALL',
      SUBJECT: 'Call back',
      COMPLETED: 'N',
      STATUS: '1',
    });
    expect(got).not.toHaveProperty('COMMUNICATIONS');
    await call('crm.activity.update', { id, fields: { COMPLETED: 'Y' } });
    expect((await call('crm.activity.get', { id })).json.result).toMatchObject({ STATUS: '2' });
    expect((await call('crm.activity.delete', { id })).json.result).toBe(true);
    const gone = await call('crm.activity.get', { id });
    expect(gone.status).toBe(400);
    expect(gone.json).toEqual({ error: '', error_description: '' });
    expect((await call('crm.activity.delete', { id })).json.error_description).toBe(
      'Activity is not found.',
    );
    // Another app's configurable activity: get refuses it, list answers it.
    const other = await portal.addActivity({
      ...owner,
      TYPE_ID: 6,
      PROVIDER_ID: 'CONFIGURABLE_REST_APP',
      PROVIDER_TYPE_ID: 'DELIVERY',
    });
    expect((await call('crm.activity.get', { id: other.id })).json).toEqual({
      error: '',
      error_description: 'Use crm.activity.configurable.get for this activity provider',
    });
    const listed = await call('crm.activity.list', { filter: { ID: other.id }, select: ['*'] });
    expect(listed.json.result).toEqual([
      expect.objectContaining({ ID: other.id, PROVIDER_ID: 'CONFIGURABLE_REST_APP' }),
    ]);
  });

  it('pages crm.deal.list by 50 with total and next, filters by prefix and skips the count for start=-1', async () => {
    const page = await call('crm.deal.list', {
      filter: { '>ID': 10, '=STAGE_ID': 'WON' },
      order: { ID: 'ASC' },
      select: ['ID', 'STAGE_ID'],
    });
    expect(page.json['total']).toBe(55);
    expect(page.json['next']).toBe(50);
    const rows = page.json.result as Array<Record<string, string>>;
    expect(rows).toHaveLength(50);
    expect(rows[0]).toEqual({ ID: '12', STAGE_ID: 'WON' });
    const fast = await call('crm.deal.list', { filter: { '>ID': 100 }, start: -1 });
    expect(fast.json['total']).toBeUndefined();
    expect((fast.json.result as unknown[]).length).toBe(20);
  });

  it('fires ONCRMDEALUPDATE with the calling user after crm.deal.update', async () => {
    await call('event.bind', { event: 'ONCRMDEALUPDATE', handler: `${receiver.url}/events` });
    const res = await call('crm.deal.update', { id: 3, fields: { STAGE_ID: 'WON' } }, manager);
    expect(res.json.result).toBe(true);
    await portal.whenIdle();
    const body = qs.parse(receiver.requests.at(-1)?.body ?? '') as {
      data: unknown;
      auth: Record<string, string>;
    };
    expect(body.data).toEqual({ FIELDS: { ID: '3' } });
    expect(body.auth['user_id']).toBe('2');
  });

  it('rejects a duplicate event.bind with ERROR_CORE and an unknown event with ERROR_EVENT_NOT_FOUND', async () => {
    const handler = `${receiver.url}/dup`;
    expect((await call('event.bind', { event: 'onCrmDealAdd', handler })).json.result).toBe(true);
    const dup = await call('event.bind', { event: 'ONCRMDEALADD', handler });
    expect(dup.status).toBe(400);
    expect(dup.json).toEqual({
      error: 'ERROR_CORE',
      error_description: 'Unable to set event handler: Handler already binded',
    });
    const other = await call('event.bind', { event: 'ONCRMDEALADD', handler, auth_type: 1 });
    expect(other.json.result).toBe(true);
    const unknown = await call('event.bind', { event: 'ONCRMDEALSTAGEID', handler });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toBe('ERROR_EVENT_NOT_FOUND');
  });

  it('lists bindings with event.get and refuses a non-admin binding for someone else', async () => {
    const list = await call('event.get');
    expect(list.json.result).toEqual(
      expect.arrayContaining([
        { event: 'ONCRMDEALADD', handler: `${receiver.url}/dup`, auth_type: '0', offline: 0 },
        { event: 'ONCRMDEALADD', handler: `${receiver.url}/dup`, auth_type: '1', offline: 0 },
      ]),
    );
    const denied = await call(
      'event.bind',
      { event: 'ONCRMDEALADD', handler: `${receiver.url}/x`, auth_type: 1 },
      manager,
    );
    expect(denied.status).toBe(403);
    expect(denied.json.error).toBe('ACCESS_DENIED');
  });

  it('unbinds any event name it is given, and needs a handler for an online one', async () => {
    // A name no portal knows is not refused (CORE:lib/api/event.php eventUnbind): nothing
    // matches, count 0.
    const gone = await call('event.unbind', { event: 'ONCRMNOSUCHEVENT', handler: 'https://x.y/' });
    expect([gone.status, gone.json.result]).toEqual([200, { count: 0 }]);
    const noHandler = await call('event.unbind', { event: 'ONCRMDEALADD' });
    expect([noHandler.status, noHandler.json.error]).toEqual([400, 'ERROR_ARGUMENT']);
    const handler = `${receiver.url}/unbind`;
    expect((await call('event.bind', { event: 'ONCRMDEALUPDATE', handler })).json.result).toBe(
      true,
    );
    const one = await call('event.unbind', { event: 'onCrmDealUpdate', handler });
    expect(one.json.result).toEqual({ count: 1 });
  });

  it('guards placement.bind: DEFAULT is an argument error, duplicates are ERROR_CORE, non-admins are denied', async () => {
    const handler = `${receiver.url}/tab`;
    const def = await call('placement.bind', { PLACEMENT: 'DEFAULT', HANDLER: handler });
    expect(def.json.error).toBe('ERROR_ARGUMENT');
    const params = { PLACEMENT: 'CRM_DEAL_DETAIL_TAB', HANDLER: handler, TITLE: 'Hooks' };
    expect((await call('placement.bind', params)).json.result).toBe(true);
    const dup = await call('placement.bind', params);
    expect(dup.json.error_description).toBe(
      'Unable to set placement handler: Handler already binded',
    );
    expect((await call('placement.bind', params, manager)).status).toBe(403);
    expect(portal.placements).toHaveLength(1);
  });

  it('runs batch commands keyed by name, with results, errors, totals and next', async () => {
    const res = await call('batch', {
      halt: 0,
      cmd: {
        deal: 'crm.deal.get?id=1',
        missing: 'crm.deal.get?id=99999',
        list: 'crm.deal.list?filter[STAGE_ID]=WON&select[]=ID',
        title: 'crm.deal.get?id=$result[deal][ID]',
      },
    });
    const r = res.json.result as Record<string, Record<string, unknown>>;
    expect(Object.keys(r['result'] ?? {})).toEqual(['deal', 'list', 'title']);
    expect(r['result_error']).toEqual({ missing: { error: '', error_description: 'Not found' } });
    expect(r['result_total']).toEqual({ list: 61 });
    expect(r['result_next']).toEqual({ list: 50 });
    expect(Object.keys(r['result_time'] ?? {})).toEqual(['deal', 'list', 'title']);
  });

  it('stops a halting batch at the first error and forbids nested batch', async () => {
    const res = await call('batch', {
      halt: 1,
      cmd: { a: 'crm.deal.get?id=99999', b: 'crm.deal.get?id=1', c: 'batch' },
    });
    const r = res.json.result as Record<string, unknown>;
    expect(r['result']).toEqual([]);
    expect(Object.keys(r['result_error'] as object)).toEqual(['a']);
    const nested = await call('batch', { cmd: { n: 'batch?cmd[x]=profile' } });
    const errors = (nested.json.result as Record<string, Record<string, { error: string }>>)[
      'result_error'
    ];
    expect(errors?.['n']?.error).toBe('ERROR_BATCH_METHOD_NOT_ALLOWED');
  });

  it('runs the first 50 commands of a longer batch and ends the rest with ERROR_BATCH_LENGTH_EXCEEDED', async () => {
    const cmd = Object.fromEntries(Array.from({ length: 52 }, (_, i) => [`c${i}`, 'profile']));
    type Answer = Record<string, Record<string, { error?: string; error_description?: string }>>;
    const res = await call('batch', { cmd });
    expect(res.status).toBe(200);
    const body = res.json.result as Answer;
    expect(Object.keys(body['result'] ?? {})).toHaveLength(50);
    expect(body['result_error']).toEqual({
      c50: { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: 'Max batch length exceeded' },
      c51: { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: 'Max batch length exceeded' },
    });
    // halt=1 stops at the first of them.
    const halted = (await call('batch', { cmd, halt: 1 })).json.result as Answer;
    expect(Object.keys(halted['result_error'] ?? {})).toEqual(['c50']);
  });

  it('applies the leaky bucket: 60 immediate calls overflow it and calls pass again after draining', async () => {
    portal.setRateLimit({ enabled: true });
    const answers = await Promise.all(Array.from({ length: 60 }, () => call('profile')));
    const limited = answers.filter((a) => a.status === 503);
    expect(limited).toHaveLength(10);
    expect(limited[0]?.json).toEqual({
      error: 'QUERY_LIMIT_EXCEEDED',
      error_description: 'Too many requests',
    });
    expect(portal.rateLimitHits).toBe(10);
    expect((await call('profile')).status).toBe(503);
    clock += 5_000; // drains 10 at 2 per second
    const after = await Promise.all(Array.from({ length: 10 }, () => call('profile')));
    expect(after.every((a) => a.status === 200)).toBe(true);
    expect((await call('profile')).status).toBe(503);
    portal.setRateLimit({ enabled: false });
  });

  it('counts a batch of 50 commands as one request against the limit', async () => {
    portal.setRateLimit({ enabled: true, burst: 2 });
    const cmd = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`c${i}`, 'profile']));
    expect((await call('batch', { cmd })).status).toBe(200);
    expect((await call('profile')).status).toBe(200);
    expect((await call('profile')).status).toBe(503);
    portal.setRateLimit({ enabled: false });
  });

  it('serves inbound webhook calls and refuses event.bind through them with WRONG_AUTH_TYPE', async () => {
    const hook = portal.createInboundWebhook(2);
    const deal = await rest(hook, 'crm.deal.get.json', { id: 2 });
    expect((deal.json.result as { ID: string }).ID).toBe('2');
    const bind = await rest(hook, 'event.bind', {
      event: 'ONCRMDEALADD',
      handler: `${receiver.url}/hook`,
    });
    expect(bind.status).toBe(403);
    expect(bind.json.error).toBe('WRONG_AUTH_TYPE');
    const wrong = await rest(hook.replace(/\/[0-9a-f]+\/$/, '/deadbeef/'), 'profile');
    expect(wrong.json.error).toBe('INVALID_CREDENTIALS');
    expect(portal.calls.at(-2)).toMatchObject({ method: 'event.bind', via: 'webhook', userId: 2 });
  });

  it('keeps the operating time per app or webhook and method, and answers the block without time', async () => {
    portal.setOperatingCost('crm.deal.get', 200, 480);
    const hook = portal.createInboundWebhook(1);
    const app = () => call('crm.deal.get', { id: 2 });
    const figures = (a: Answer) => (a.json as { time?: { operating?: number } }).time?.operating;
    expect(figures(await app())).toBe(200);
    expect(figures(await app())).toBe(400);
    expect(figures(await app())).toBe(600);
    const blocked = await app();
    expect(blocked.status).toBe(429);
    expect(blocked.json).toEqual({
      error: 'OPERATION_TIME_LIMIT',
      error_description: 'Method is blocked due to operation time limit.',
    });
    // The webhook has its own sum, and the app's other methods go on.
    const viaHook = await rest(hook, 'crm.deal.get', { id: 2 });
    expect(viaHook.status).toBe(200);
    expect(figures(viaHook)).toBe(200);
    expect((await call('crm.deal.list', {})).status).toBe(200);
    // batch itself is not counted; its command is, under its own method.
    const batch = await call('batch', { cmd: { d: 'crm.deal.get?id=2' } });
    expect(batch.status).toBe(200);
    const inner = (batch.json.result as Record<string, Record<string, { error?: string }>>)[
      'result_error'
    ];
    expect(inner?.['d']?.error).toBe('OPERATION_TIME_LIMIT');
    // Ten minutes on, the budget is back.
    clock += 600_001;
    portal.setOperatingCost('crm.deal.get', 0);
    expect((await app()).status).toBe(200);
  });

  it('refuses a method outside the scopes with 401 insufficient_scope, without a description in a batch', async () => {
    const scoped = await emu.addPortal({ installed: true, scope: 'crm' });
    const token = scoped.issueUserAuth(1).accessToken;
    const top = await rest(scoped.clientEndpoint, 'tasks.task.get', { taskId: 1, auth: token });
    expect(top.status).toBe(401);
    expect(top.json).toEqual({
      error: 'insufficient_scope',
      error_description: 'The request requires higher privileges than provided by the access token',
    });
    const batch = await rest(scoped.clientEndpoint, 'batch', {
      cmd: { t: 'tasks.task.get?taskId=1' },
      auth: token,
    });
    const inner = (batch.json.result as Record<string, Record<string, unknown>>)['result_error'];
    expect(inner?.['t']).toEqual({ error: 'insufficient_scope', error_description: '' });
  });

  it('injects failures with failNext, also inside batch', async () => {
    portal.failNext(
      'crm.deal.get',
      { status: 500, error: 'INTERNAL_SERVER_ERROR', description: 'boom' },
      2,
    );
    expect((await call('crm.deal.get', { id: 1 })).status).toBe(500);
    const batch = await call('batch', { cmd: { a: 'crm.deal.get?id=1' } });
    const r = batch.json.result as Record<string, Record<string, { error: string }>>;
    expect(r['result_error']?.['a']?.error).toBe('INTERNAL_SERVER_ERROR');
    expect((await call('crm.deal.get', { id: 1 })).status).toBe(200);
  });

  it('stores crm.timeline.comment.add comments on the deal', async () => {
    const res = await call('crm.timeline.comment.add', {
      fields: { ENTITY_ID: 5, ENTITY_TYPE: 'deal', COMMENT: 'Invoice sent' },
    });
    expect(typeof res.json.result).toBe('number');
    expect(portal.timeline.at(-1)).toMatchObject({
      ENTITY_ID: '5',
      ENTITY_TYPE: 'deal',
      COMMENT: 'Invoice sent',
      AUTHOR_ID: '1',
    });
  });

  it('takes crm.timeline.comment.add fields only in lower case, on a smart-process item too', async () => {
    // Since crm 23.100.0 FIELDS, Fields and arFields are not accepted (the method's doc page).
    for (const key of ['FIELDS', 'Fields', 'arFields']) {
      const res = await call('crm.timeline.comment.add', {
        [key]: { ENTITY_ID: 5, ENTITY_TYPE: 'deal', COMMENT: 'Invoice sent' },
      });
      expect([res.status, res.json.error]).toEqual([400, '100']);
    }
    const { id } = await portal.addItem(128, { title: 'Order' });
    const res = await call('crm.timeline.comment.add', {
      fields: { ENTITY_ID: id, ENTITY_TYPE: 'dynamic_128', COMMENT: 'Shipped' },
    });
    expect(typeof res.json.result).toBe('number');
    const lead = await call('crm.timeline.comment.add', {
      fields: { ENTITY_ID: 1, ENTITY_TYPE: 'lead', COMMENT: 'x' },
    });
    expect(lead.json.error).toBe('OWNER_NOT_FOUND');
    // Any owner type's name, in any case (CCrmOwnerType::ResolveID): a quote's timeline.
    const quote = await portal.addQuote({ TITLE: 'Offer' });
    const onQuote = await call('crm.timeline.comment.add', {
      fields: { ENTITY_ID: quote.id, ENTITY_TYPE: 'QUOTE', COMMENT: 'Sent' },
    });
    expect(typeof onQuote.json.result).toBe('number');
    expect(portal.timeline.at(-1)).toMatchObject({ ENTITY_ID: quote.id, ENTITY_TYPE: 'quote' });
  });

  it('reads crm.timeline.comment.add fields by their exact names, ENTITY_TYPE_ID too', async () => {
    // CORE crm lib/controller/timeline/comment.php `fetchFieldsToAdd`: `$fields['ENTITY_ID']`…
    const lower = await call('crm.timeline.comment.add', {
      fields: { entity_id: 5, entity_type: 'deal', comment: 'x' },
    });
    expect([lower.status, lower.json.error]).toEqual([400, 'OWNER_NOT_FOUND']);
    const empty = await call('crm.timeline.comment.add', {
      fields: { ENTITY_ID: 5, ENTITY_TYPE: 'deal', comment: 'x' },
    });
    expect([empty.json.error, empty.json.error_description]).toEqual([
      'INVALID_ARG_VALUE',
      'Empty comment message',
    ]);
    // The author is the caller, whatever AUTHOR_ID says.
    const byId = await call('crm.timeline.comment.add', {
      fields: { ENTITY_ID: 5, ENTITY_TYPE_ID: 2, COMMENT: 'Paid', AUTHOR_ID: 7 },
    });
    expect(typeof byId.json.result).toBe('number');
    expect(portal.timeline.at(-1)).toMatchObject({
      ENTITY_ID: '5',
      ENTITY_TYPE: 'deal',
      AUTHOR_ID: '1',
    });
  });

  it('returns contacts with Bitrix multi-field phones', async () => {
    const { id } = await portal.addContact({
      NAME: 'Ada',
      PHONE: [{ VALUE: '+15550100', VALUE_TYPE: 'WORK' }],
    });
    const res = await call('crm.contact.get', { id });
    const phones = (res.json.result as Record<string, unknown>)['PHONE'];
    expect(phones).toEqual([
      { ID: expect.any(String), VALUE_TYPE: 'WORK', VALUE: '+15550100', TYPE_ID: 'PHONE' },
    ]);
    // Its last phone removed (an empty VALUE for its ID), the field is not in the answer at
    // all (DOCS:api-reference/crm/contacts/crm-contact-get.md), not an empty list.
    const phoneId = (phones as Array<{ ID: string }>)[0]!.ID;
    await call('crm.contact.update', { id, fields: { PHONE: [{ ID: phoneId, VALUE: '' }] } });
    const after = (await call('crm.contact.get', { id })).json.result as Record<string, unknown>;
    expect('PHONE' in after).toBe(false);
    expect(after['HAS_PHONE']).toBe('N');
    expect(after['NAME']).toBe('Ada');
  });
});
