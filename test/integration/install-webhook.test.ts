import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { runCli } from '../../server/cli/run.js';
import { findPortalByMemberId, type PortalRow } from '../../db/stores/portals.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { eventBody } from '../helpers/event-builder.js';
import { startInstallHarness, type InstallHarness } from '../helpers/install-harness.js';

describe('inbound-webhook mode', () => {
  let h: InstallHarness;
  let portal: EmulatedPortal;

  async function cli(argv: string[]) {
    let out = '';
    let err = '';
    const env = {
      DATA_DIR: h.t.dir,
      SESSION_SECRET: h.t.deps.config.sessionSecret,
      TOKEN_ENCRYPTION_KEY: h.t.deps.config.tokenEncryptionKey.toString('hex'),
      B24_PORTAL_HOSTS: '127.0.0.1:*',
      APP_URL: h.appUrl,
      ...h.t.dbEnv,
    };
    const code = await runCli(argv, env, { out: (s) => (out += s), err: (s) => (err += s) });
    return { code, out, err };
  }

  beforeEach(async () => {
    h = await startInstallHarness();
    portal = await h.addPortal({ installed: true });
  });
  afterEach(async () => {
    await h.close();
  });

  it('connects by webhook, prints the outgoing-webhook form values, and verifies and enriches events', async () => {
    const webhookUrl = portal.createInboundWebhook(1);
    const hook = portal.createOutgoingWebhook({
      handler: `${h.appUrl}/b24/events`,
      events: ['ONCRMDEALADD'],
    });
    const res = await cli([
      'connect-webhook',
      '--webhook-url',
      webhookUrl,
      '--application-token',
      hook.applicationToken,
      '--member-id',
      portal.memberId,
      '--json',
    ]);
    expect(res).toMatchObject({ code: 0, err: '' });
    expect(JSON.parse(res.out)).toEqual({
      memberId: portal.memberId,
      domain: portal.domain,
      authMode: 'webhook',
      handlerUrl: `${h.appUrl}/b24/events`,
      events: ['ONCRMDEALADD', 'ONCRMDEALUPDATE'],
    });
    h.t.deps.portals.invalidate();
    const row = (await findPortalByMemberId(h.t.deps.db, portal.memberId)) as PortalRow;
    expect(row).toMatchObject({
      auth_mode: 'webhook',
      status: 'installed',
      access_token_enc: null,
    });
    expect(row.webhook_url_enc).not.toContain(webhookUrl.split('/')[5]!);
    expect(portal.bindings).toHaveLength(0);

    const change = await portal.addDeal({ TITLE: 'Webhook deal', OPPORTUNITY: '100' });
    expect(change.deliveries.map((d) => d.status)).toEqual([200]);
    await h.services.intake.drain();
    const [ev] = await h.t.deps.db('events');
    expect(ev).toMatchObject({ event: 'ONCRMDEALADD', status: 'received', entity_id: change.id });

    const deal = await h.t.deps.bitrix.call<{ TITLE: string }>(row, 'crm.deal.get', {
      id: change.id,
    });
    expect(deal.TITLE).toBe('Webhook deal');
    const last = portal.calls[portal.calls.length - 1]!;
    expect(last).toMatchObject({ method: 'crm.deal.get', via: 'webhook', auth: null });
  });

  it('rejects an outgoing-webhook delivery with another application token', async () => {
    const webhookUrl = portal.createInboundWebhook(1);
    const res = await cli([
      'connect-webhook',
      '--webhook-url',
      webhookUrl,
      '--application-token',
      'a'.repeat(32),
      '--member-id',
      portal.memberId,
    ]);
    expect(res.code).toBe(0);
    expect(res.out).toContain(`${h.appUrl}/b24/events`);
    h.t.deps.portals.invalidate();
    const delivery = await fetch(`${h.appUrl}/b24/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: eventBody({
        portal: {
          memberId: portal.memberId,
          domain: portal.domain,
          applicationToken: 'b'.repeat(32),
        },
        accessToken: null,
      }),
    });
    expect(delivery.status).toBe(401);
  });

  it('refuses a webhook URL the portal does not accept and stores nothing', async () => {
    const res = await cli([
      'connect-webhook',
      '--webhook-url',
      `${portal.url}/rest/1/wrongsecret/`,
      '--application-token',
      'a'.repeat(32),
      '--member-id',
      portal.memberId,
    ]);
    expect(res.code).toBe(1);
    expect(res.err).toContain('refused');
    expect(await findPortalByMemberId(h.t.deps.db, portal.memberId)).toBeUndefined();
  });

  it('refuses a webhook on a host outside B24_PORTAL_HOSTS without calling it', async () => {
    const res = await cli([
      'connect-webhook',
      '--webhook-url',
      `http://localhost:${new URL(portal.url).port}/rest/1/abc/`,
      '--application-token',
      'a'.repeat(32),
      '--member-id',
      portal.memberId,
    ]);
    expect(res.code).toBe(1);
    expect(portal.calls).toHaveLength(0);
  });

  it('requires --member-id (exit 2)', async () => {
    const res = await cli([
      'connect-webhook',
      '--webhook-url',
      portal.createInboundWebhook(1),
      '--application-token',
      'x'.repeat(16),
    ]);
    expect(res.code).toBe(2);
    expect(res.err).toContain('--member-id');
  });
});
