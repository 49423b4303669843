import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import qs from 'qs';
import {
  startEmulator,
  type BitrixEmulator,
  type EmulatedPortal,
} from '../emulator/bitrix-emulator.js';
import { startRecordingReceiver, type RecordingReceiver } from '../emulator/recording-receiver.js';

const page = async (url: string): Promise<{ status: number; html: string }> => {
  const res = await fetch(url);
  return { status: res.status, html: await res.text() };
};

/** The frame registry the portal page embeds for its script. */
function framesOf(html: string): Array<{
  form: { action: string; fields: Array<[string, string]>; frameName: string };
}> {
  const m = /<script type="application\/json" id="b24emu-frames">(.*?)<\/script>/s.exec(html);
  return Object.values(JSON.parse(m?.[1] ?? '{}') as Record<string, never>);
}

/** A REST call with the admin's token, as the app makes it. */
const adminCall = (portal: EmulatedPortal, method: string, params: Record<string, unknown>) =>
  fetch(`${portal.clientEndpoint}${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...params, auth: portal.issueUserAuth(1).accessToken }),
  });

describe('install flow and portal pages', () => {
  let emu: BitrixEmulator;
  let portal: EmulatedPortal;
  let app: RecordingReceiver;

  beforeAll(async () => {
    emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret' });
    portal = await emu.addPortal();
    app = await startRecordingReceiver();
    await portal.addDeal({ TITLE: 'Framed deal' });
  });

  afterAll(async () => {
    await emu.close();
    await app.close();
  });

  it('posts the installer form Bitrix24 sends into the install frame', async () => {
    const res = await portal.install({ appUrl: app.url, installPath: '/install' });
    expect(res.status).toBe(200);
    const req = app.requests.at(-1);
    const url = new URL(req?.path ?? '', app.url);
    expect(url.pathname).toBe('/install');
    expect(url.searchParams.get('DOMAIN')).toBe(portal.domain);
    expect(url.searchParams.get('PROTOCOL')).toBe('0');
    expect(url.searchParams.get('LANG')).toBe('en');
    expect(url.searchParams.get('APP_SID')).toMatch(/^[0-9a-f]{32}$/);
    const form = new URLSearchParams(req?.body ?? '');
    expect([...form.keys()]).toEqual([
      'AUTH_ID',
      'AUTH_EXPIRES',
      'REFRESH_ID',
      'SERVER_ENDPOINT',
      'member_id',
      'status',
      'PLACEMENT',
      'PLACEMENT_OPTIONS',
      'APPLICATION_TOKEN',
      'APPLICATION_SCOPE',
    ]);
    expect(form.get('AUTH_EXPIRES')).toBe('3600');
    expect(form.get('SERVER_ENDPOINT')).toBe(emu.serverEndpoint);
    expect(form.get('PLACEMENT')).toBe('DEFAULT');
    expect(form.get('APPLICATION_TOKEN')).toBe(portal.applicationToken);
    const info = await fetch(`${portal.clientEndpoint}app.info?auth=${form.get('AUTH_ID') ?? ''}`);
    expect(((await info.json()) as { result: { INSTALLED: boolean } }).result.INSTALLED).toBe(
      false,
    );
    expect(portal.installState).toBe('installing');
  });

  it('frames the installer for an admin and a notice for other users until installFinish', async () => {
    const asAdmin = await page(`${portal.url}/app`);
    const [frame] = framesOf(asAdmin.html);
    expect(frame?.form.frameName).toMatch(
      new RegExp(`^${portal.domain.replace('.', '\\.')}\\|0\\|[0-9a-f]{32}$`),
    );
    expect(frame?.form.action.startsWith(`${app.url}/install?DOMAIN=`)).toBe(true);
    expect(asAdmin.html).toContain(`name="${frame?.form.frameName ?? ''}"`);
    const asManager = await page(`${portal.url}/app?user=2`);
    expect(asManager.html).toContain('not fully installed');
    expect(framesOf(asManager.html)).toHaveLength(0);
  });

  it('finishes the install from the page backend and hands back the app page form', async () => {
    const bind = await adminCall(portal, 'event.bind', {
      event: 'ONAPPINSTALL',
      handler: `${app.url}/b24/events`,
    });
    expect(bind.status).toBe(200);
    const res = await fetch(`${portal.url}/__emulator/install-finish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: 1 }),
    });
    const json = (await res.json()) as { installState: string; form: { action: string } };
    expect(json.installState).toBe('installed');
    expect(json.form.action.startsWith(`${app.url}/app?`)).toBe(true);
    const delivered = app.requests.find((r) => r.path === '/b24/events');
    expect((qs.parse(delivered?.body ?? '') as { event?: string }).event).toBe('ONAPPINSTALL');
  });

  it('frames the CRM_DEAL_DETAIL_TAB handler in the deal card with the deal id', async () => {
    await adminCall(portal, 'placement.bind', {
      PLACEMENT: 'CRM_DEAL_DETAIL_TAB',
      HANDLER: `${app.url}/placement/deal-tab`,
      TITLE: 'Webhooks',
    });
    const card = await page(`${portal.url}/crm/deal/details/1/`);
    expect(card.status).toBe(200);
    const [frame] = framesOf(card.html);
    const fields = new Map(frame?.form.fields);
    expect(frame?.form.action.startsWith(`${app.url}/placement/deal-tab?DOMAIN=`)).toBe(true);
    expect(fields.get('PLACEMENT')).toBe('CRM_DEAL_DETAIL_TAB');
    expect(fields.get('PLACEMENT_OPTIONS')).toBe('{"ID":"1"}');
    expect((await page(`${portal.url}/crm/deal/details/999/`)).status).toBe(404);
  });

  it('moves a deal from its card, as a user would, and Bitrix24 sends ONCRMDEALUPDATE', async () => {
    await adminCall(portal, 'event.bind', {
      event: 'ONCRMDEALUPDATE',
      handler: `${app.url}/b24/events`,
    });
    const card = await page(`${portal.url}/crm/deal/details/1/?user=2`);
    expect(card.html).toMatch(
      /<form method="post" action="\/crm\/deal\/details\/1\/stage\?user=2"/,
    );
    expect(card.html).toContain('<option value="WON">Deal successful</option>');
    const moved = await fetch(`${portal.url}/crm/deal/details/1/stage?user=2`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'STAGE_ID=WON',
      redirect: 'manual',
    });
    expect(moved.status).toBe(303);
    expect(moved.headers.get('location')).toBe('/crm/deal/details/1/?user=2');
    await portal.whenIdle();
    const update = app.requests
      .map((r) => qs.parse(r.body) as { event?: string; data?: { FIELDS?: { ID?: string } } })
      .find((b) => b.event === 'ONCRMDEALUPDATE');
    expect(update?.data?.FIELDS?.ID).toBe('1');
    expect((await page(`${portal.url}/crm/deal/details/1/`)).html).toContain('Stage <b>WON</b>');
    // A stage the pipeline does not have is refused.
    const bad = await fetch(`${portal.url}/crm/deal/details/1/stage`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'STAGE_ID=C9:NOPE',
    });
    expect(bad.status).toBe(400);
    await adminCall(portal, 'event.unbind', {
      event: 'ONCRMDEALUPDATE',
      handler: `${app.url}/b24/events`,
    });
  });

  it('serves the BX24 shim as JavaScript', async () => {
    const res = await fetch(`${portal.url}/bx24.js`);
    expect(res.headers.get('content-type')).toContain('application/javascript');
    expect(await res.text()).toContain('window.BX24');
  });

  it('keeps the bindings on update but ONAPPINSTALL, and sends ONAPPUPDATE to them', async () => {
    const admin = portal.issueUserAuth(1).accessToken;
    await fetch(`${portal.clientEndpoint}event.bind`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ event: 'ONAPPUPDATE', handler: `${app.url}/b24/events`, auth: admin }),
    });
    const [record] = await portal.update(2);
    const p = qs.parse(record?.body ?? '') as { data: unknown; auth: Record<string, string> };
    expect(p.data).toEqual({ VERSION: '2', PREVIOUS_VERSION: '1', LANGUAGE_ID: 'en' });
    expect(p.auth['refresh_token']).toBeDefined();
    expect(portal.bindings.map((b) => b.event)).toEqual(['ONAPPUPDATE']);
    expect(portal.appVersion).toBe(2);
  });
});
