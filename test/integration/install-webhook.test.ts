import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { runCli } from '../../server/cli/run.js';
import { findPortalByMemberId, type PortalRow } from '../../db/stores/portals.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { eventBody } from '../helpers/event-builder.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';

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

    // The portal's subscription ends: a webhook's calls are refused with ACCESS_DENIED "REST is
    // available only by subscription", which pauses the portal (its events wait) until a
    // later call goes through; a webhook has no refresh to try.
    portal.endSubscription(true);
    const read = () =>
      h.t.deps.bitrix.call<{ TITLE: string }>(row, 'crm.deal.get', { id: change.id });
    await expect(read()).rejects.toMatchObject({ name: 'PausedError' });
    expect(portal.calls.at(-1)).toMatchObject({ error: 'ACCESS_DENIED', via: 'webhook' });
    const paused = () => findPortalByMemberId(h.t.deps.db, portal.memberId);
    expect(await paused()).toMatchObject({ status: 'installed', pause_reason: 'payment_required' });
    portal.endSubscription(false);
    await expect(read()).rejects.toMatchObject({ name: 'PausedError' });
    h.t.clock.advance(11 * 60_000);
    expect((await read()).TITLE).toBe('Webhook deal');
    expect(await paused()).toMatchObject({ pause_reason: null });
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

  /**
   * A connection made with a wrong member_id (the portal's deliveries then all come back
   * unknown_portal) could not be undone from the CLI: the row stayed installed with its
   * webhook URL.
   */
  it('disconnect-webhook undoes a connection made with a wrong member_id; the right one then works', async () => {
    const webhookUrl = portal.createInboundWebhook(1);
    const hook = portal.createOutgoingWebhook({
      handler: `${h.appUrl}/b24/events`,
      events: ['ONCRMDEALADD'],
    });
    const connect = (memberId: string) =>
      cli([
        'connect-webhook',
        ...['--webhook-url', webhookUrl, '--application-token', hook.applicationToken],
        ...['--member-id', memberId],
      ]);
    expect((await connect('typo-member')).code).toBe(0);
    const gone = await cli(['disconnect-webhook', '--portal', 'typo-member']);
    expect(gone).toEqual({
      code: 0,
      err: '',
      out:
        `Disconnected ${portal.domain} (member_id typo-member): its webhook URL and application token are forgotten,\n` +
        'and its deliveries are refused from now on. Its event log and rules stay\n' +
        '(npx b24hooks erase --portal typo-member removes them); delete the outgoing webhook in Bitrix24 too.\n',
    });
    h.t.deps.portals.invalidate();
    expect(await findPortalByMemberId(h.t.deps.db, 'typo-member')).toMatchObject({
      status: 'uninstalled',
      webhook_url_enc: null,
      application_token_digest: null,
    });
    // A delivery under the wrong member_id is refused now, with the token that passed before.
    const forged = await fetch(`${h.appUrl}/b24/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: eventBody({
        portal: {
          memberId: 'typo-member',
          domain: portal.domain,
          applicationToken: hook.applicationToken,
        },
        accessToken: null,
      }),
    });
    expect(forged.status).toBe(401);
    // Twice is no error; listed as uninstalled.
    expect(await cli(['disconnect-webhook', '--portal', 'typo-member', '--json'])).toMatchObject({
      code: 0,
      out:
        JSON.stringify({
          memberId: 'typo-member',
          domain: portal.domain,
          status: 'uninstalled',
          outcome: 'already',
        }) + '\n',
    });
    // The right member_id connects, and the portal's events are stored.
    expect((await connect(portal.memberId)).code).toBe(0);
    h.t.deps.portals.invalidate();
    const change = await portal.addDeal({ TITLE: 'After the fix' });
    expect(change.deliveries.map((d) => d.status)).toEqual([200]);
  });

  it('disconnect-webhook refuses a portal with the OAuth app installed, and an unknown one', async () => {
    const { portal: oauth } = await installPortal(h, { memberId: 'oauth-member' });
    const res = await cli(['disconnect-webhook', '--portal', oauth.memberId]);
    expect(res.code).toBe(1);
    expect(res.err).toBe(
      `b24hooks disconnect-webhook: ${oauth.domain} has the OAuth app installed, not a webhook connection: uninstall the app in Bitrix24 to end it\n`,
    );
    expect(await findPortalByMemberId(h.t.deps.db, oauth.memberId)).toMatchObject({
      status: 'installed',
    });
    expect(await cli(['disconnect-webhook', '--portal', 'nobody'])).toMatchObject({
      code: 2,
      err: 'b24hooks disconnect-webhook: no portal with member_id "nobody"\n',
    });
    expect((await cli(['disconnect-webhook'])).code).toBe(2);
  });
});
