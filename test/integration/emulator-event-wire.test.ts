import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import qs from 'qs';
import {
  buildEventAuth,
  buildEventBody,
  encodePhpForm,
  startEmulator,
  type BitrixEmulator,
  type EmulatedPortal,
} from '../emulator/bitrix-emulator.js';
import {
  startRecordingReceiver,
  unusedLocalUrl,
  type RecordingReceiver,
} from '../emulator/recording-receiver.js';

const CAPTURE_URL = new URL('../fixtures/events/oncrmcontactadd-capture.txt', import.meta.url);

type Parsed = { event: string; data: Record<string, unknown>; auth: Record<string, string> };
const parse = (body: string): Parsed => qs.parse(body, { depth: 5 }) as unknown as Parsed;
const topKeys = (body: string): string[] =>
  [...new URLSearchParams(body).keys()].map((k) => k.replace(/\[.*$/, ''));
const authKeys = (body: string): string[] =>
  [...new URLSearchParams(body).keys()]
    .filter((k) => k.startsWith('auth['))
    .map((k) => k.slice(5, -1));

describe('event wire format', () => {
  it('reproduces the real ONCRMCONTACTADD capture byte for byte', async () => {
    const capture = (await readFile(CAPTURE_URL, 'utf8')).trimEnd();
    const auth = buildEventAuth({
      domain: 'bitrix24-php-sdk-playground.bitrix24.com',
      clientEndpoint: 'https://bitrix24-php-sdk-playground.bitrix24.com/rest/',
      serverEndpoint: 'https://oauth.bitrix.info/rest/',
      memberId: '010b6886ebc205e43ae65000ee00addb',
      applicationToken: '3c6c9248ec54af6bea1159b43ee0ab32',
      scope: 'crm,placement,user_brief',
      status: 'L',
      tokens: {
        accessToken: 'be45f0660071849a0058f18a000000010000077261ef50fc26f1357adbd86a052c9e48',
        expires: 1727022526,
        expiresIn: 3600,
        userId: 1,
      },
    });
    const body = buildEventBody({
      event: 'ONCRMCONTACTADD',
      eventHandlerId: 58,
      data: { FIELDS: { ID: 134806 } },
      ts: 1727018926,
      auth,
    });
    expect(body).toBe(capture);
  });

  it('the capture fixture is self-consistent: expires is ts plus expires_in', async () => {
    const p = parse((await readFile(CAPTURE_URL, 'utf8')).trimEnd()) as Parsed & { ts: string };
    expect(Number(p.auth['expires'])).toBe(Number(p.ts) + Number(p.auth['expires_in']));
  });

  it('encodes like PHP urlencode: space as plus, only [A-Za-z0-9_.-] left bare', () => {
    expect(encodePhpForm([['a b[c]', "x y~*'!()é"]])).toBe(
      'a+b%5Bc%5D=x+y%7E%2A%27%21%28%29%C3%A9',
    );
  });
});

describe('event delivery to a real receiver', () => {
  let emu: BitrixEmulator;
  let portal: EmulatedPortal;
  let receiver: RecordingReceiver;

  beforeAll(async () => {
    emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret' });
    portal = await emu.addPortal();
    receiver = await startRecordingReceiver();
    const admin = portal.issueUserAuth(1);
    for (const event of ['ONCRMDEALUPDATE', 'ONAPPINSTALL', 'ONAPPUNINSTALL']) {
      const res = await fetch(`${portal.clientEndpoint}event.bind`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          event,
          handler: `${receiver.url}/b24/events`,
          auth: admin.accessToken,
        }),
      });
      expect(res.status).toBe(200);
    }
  });

  afterAll(async () => {
    await emu.close();
    await receiver.close();
  });

  it('delivers nothing before the install is finished', async () => {
    await portal.addDeal({ TITLE: 'Early' });
    const { deliveries } = await portal.updateDeal(1, { STAGE_ID: 'PREPARATION' });
    expect(deliveries).toEqual([]);
    expect(receiver.requests).toHaveLength(0);
  });

  it('sends ONAPPINSTALL with a refresh token once the install is finished', async () => {
    const [record] = await portal.finishInstall();
    expect(record?.status).toBe(200);
    const p = parse(record?.body ?? '');
    expect(p.event).toBe('ONAPPINSTALL');
    expect(p.data).toEqual({ VERSION: '1', ACTIVE: 'Y', INSTALLED: 'Y', LANGUAGE_ID: 'en' });
    expect(p.auth['refresh_token']).toMatch(/^[0-9a-f]{70}$/);
    expect(p.auth['application_token']).toBe(portal.applicationToken);
  });

  it('posts form-encoded bodies with the capture key order and the queue user agent', async () => {
    const before = receiver.requests.length;
    const { deliveries } = await portal.updateDeal(1, { STAGE_ID: 'WON' }, { userId: 2 });
    expect(deliveries).toHaveLength(1);
    const req = receiver.requests[before];
    expect(req?.method).toBe('POST');
    expect(req?.path).toBe('/b24/events');
    expect(req?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(req?.headers['user-agent']).toBe('Bitrix24 Webhook Engine');
    expect(req?.body).toBe(deliveries[0]?.body);
    expect([...new Set(topKeys(req?.body ?? ''))]).toEqual([
      'event',
      'event_handler_id',
      'data',
      'ts',
      'auth',
    ]);
    expect(authKeys(req?.body ?? '')).toEqual([
      'access_token',
      'expires',
      'expires_in',
      'scope',
      'domain',
      'server_endpoint',
      'status',
      'client_endpoint',
      'member_id',
      'user_id',
      'application_token',
    ]);
    const p = parse(req?.body ?? '');
    expect(p.data).toEqual({ FIELDS: { ID: '1' } });
    expect(p.auth['user_id']).toBe('2');
    expect(p.auth['domain']).toBe(portal.domain);
  });

  it('puts a real token in auth that the receiver can use for REST', async () => {
    const { deliveries } = await portal.updateDeal(1, { TITLE: 'Renamed' });
    const token = parse(deliveries[0]?.body ?? '').auth['access_token'];
    const res = await fetch(`${portal.clientEndpoint}crm.deal.get?id=1&auth=${token}`);
    const json = (await res.json()) as { result: { TITLE: string } };
    expect(json.result.TITLE).toBe('Renamed');
  });

  it('sends robot-triggered updates without any tokens', async () => {
    const { deliveries } = await portal.updateDeal(1, { STAGE_ID: 'LOSE' }, { userId: null });
    expect(authKeys(deliveries[0]?.body ?? '')).toEqual([
      'domain',
      'server_endpoint',
      'client_endpoint',
      'member_id',
      'application_token',
    ]);
  });

  it('does not retry a delivery the receiver answers with 500', async () => {
    receiver.setStatus(500);
    const before = receiver.requests.length;
    const { deliveries } = await portal.updateDeal(1, { TITLE: 'Again' });
    await portal.whenIdle();
    receiver.setStatus(200);
    expect(deliveries.map((d) => d.status)).toEqual([500]);
    expect(receiver.requests.length - before).toBe(1);
  });

  it('records status 0 and does not retry when the receiver is down', async () => {
    const down = await unusedLocalUrl();
    const hook = portal.createOutgoingWebhook({
      handler: `${down}/hook`,
      events: ['ONCRMDEALADD'],
    });
    const { deliveries } = await portal.addDeal({ TITLE: 'Nobody listens' });
    await portal.whenIdle();
    const mine = portal.deliveries.filter((d) => d.eventHandlerId === hook.id);
    expect(deliveries).toHaveLength(1);
    expect(mine).toHaveLength(1);
    expect(mine[0]?.status).toBe(0);
    expect(mine[0]?.error).toBeTruthy();
  });

  it('gives up on a receiver that does not answer within the delivery timeout', async () => {
    const hanging = createServer(() => undefined);
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const { port } = hanging.address() as AddressInfo;
    portal.createOutgoingWebhook({
      handler: `http://127.0.0.1:${port}/slow`,
      events: ['ONCRMDEALADD'],
    });
    portal.setDeliveryTimeout(150);
    try {
      const { deliveries } = await portal.addDeal({ TITLE: 'Slow receiver' });
      const slow = deliveries.find((d) => d.handler.endsWith('/slow'));
      expect(slow?.status).toBe(0);
      expect(slow?.error).toMatch(/timeout/);
      expect(slow?.durationMs).toBeGreaterThanOrEqual(100);
    } finally {
      portal.setDeliveryTimeout(10_000);
      hanging.closeAllConnections();
      await new Promise((resolve) => hanging.close(resolve));
    }
  });

  it('gives outgoing webhooks no tokens and their own application token', async () => {
    const hook = portal.createOutgoingWebhook({
      handler: `${receiver.url}/outgoing`,
      events: ['ONCRMDEALDELETE'],
    });
    const { deliveries } = await portal.deleteDeal(1, { userId: 1 });
    const outgoing = deliveries.find((d) => d.handler.endsWith('/outgoing'));
    const p = parse(outgoing?.body ?? '');
    expect(p.auth['access_token']).toBeUndefined();
    expect(p.auth['application_token']).toBe(hook.applicationToken);
    expect(hook.applicationToken).not.toBe(portal.applicationToken);
  });

  it('sends ONAPPUNINSTALL without tokens, then REST refuses the old tokens', async () => {
    const user = portal.issueUserAuth(1);
    const [record] = await portal.uninstall({ clean: true });
    const p = parse(record?.body ?? '');
    expect(p.event).toBe('ONAPPUNINSTALL');
    expect(p.data).toEqual({ LANGUAGE_ID: 'en', CLEAN: '1' });
    expect(Object.keys(p.auth).sort()).toEqual(
      ['application_token', 'client_endpoint', 'domain', 'member_id', 'server_endpoint'].sort(),
    );
    const res = await fetch(`${portal.clientEndpoint}profile?auth=${user.accessToken}`);
    expect(res.status).toBe(401);
    expect(portal.bindings).toHaveLength(0);
  });
});
