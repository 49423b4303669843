import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId, type PortalRow } from '../../db/stores/portals.js';
import { createBitrixRest } from '../../server/bitrix/rest.js';
import { createAlertMonitor } from '../../server/alerts/index.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal } from '../helpers/event-builder.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { CLIENT_ID, CLIENT_SECRET, startInstallHarness } from '../helpers/install-harness.js';
import type { InstallHarness } from '../helpers/install-harness.js';
import { onPg } from '../helpers/pg.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * Two instances of the app on one PostgreSQL database and one emulated portal:
 * instance A is the install harness, B a second set of deps (own pool, own REST client,
 * own refresher and limiter) on A's database with A's keys. PostgreSQL pass only.
 */
(onPg() ? describe : describe.skip)('two instances calling one portal (PostgreSQL)', () => {
  let h: InstallHarness;
  let b: TestDeps;
  let portal: EmulatedPortal;
  const row = async () => (await findPortalByMemberId(h.t.deps.db, portal.memberId)) as PortalRow;
  const refreshes = () => h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token');

  beforeEach(async () => {
    h = await startInstallHarness();
    portal = await h.addPortal();
    expect((await portal.install()).status).toBe(200);
    const a = h.t.deps.config;
    b = await createTestDeps(
      {
        ...h.t.dbEnv,
        TOKEN_ENCRYPTION_KEY: a.tokenEncryptionKey.toString('hex'),
        B24_PORTAL_HOSTS: '127.0.0.1:*',
        B24_OAUTH_SERVERS: h.emu.oauthUrl,
        B24_CLIENT_ID: CLIENT_ID,
        B24_CLIENT_SECRET: CLIENT_SECRET,
        APP_URL: h.appUrl,
      },
      { clock: h.t.clock },
    );
  });
  afterEach(async () => {
    await b.close();
    await h.close();
  });

  it('refreshes an expired token once for both instances, so the portal keeps working', async () => {
    const stored = await row();
    portal.expireAccessTokens();
    const before = refreshes().length;
    const calls = Array.from({ length: 10 }, (_, i) =>
      (i % 2 ? b : h.t).deps.bitrix.call<{ ID: string }>(stored, 'profile'),
    );
    const answers = await Promise.all(calls);
    expect(answers.every((a) => a.ID === '1')).toBe(true);
    // Refresh tokens rotate: a second refresh with the same one would have been refused
    // (invalid_grant) and the portal marked needs_reauth.
    expect(refreshes().length - before).toBe(1);
    expect((await row()).status).toBe('installed');
  });

  it('shares the portal’s REST budget: two instances together stay under its limit', async () => {
    // A fast bucket so the test takes seconds: the portal drains 20 req/s, burst 20. Our side
    // drains a little slower, with more headroom: the emulator shares this process's CPU, so
    // arrivals bunch up; the slack absorbs that. Two separate buckets would still send 28 at
    // once and be refused.
    portal.setRateLimit({ enabled: true, drainPerSec: 20, burst: 20 });
    const limits = { drainPerSec: 16, burst: 20 };
    const [restA, restB] = [h.t.deps, b.deps].map((d) =>
      createBitrixRest(d, { limits, headroom: 6 }),
    );
    const stored = await row();
    const started = Date.now();
    const n = 80;
    await Promise.all(
      Array.from({ length: n }, (_, i) => (i % 2 ? restB! : restA!).call(stored, 'profile')),
    );
    const seconds = (Date.now() - started) / 1000;
    expect(portal.rateLimitHits).toBe(0);
    // 14 at once, then 16 a second: about 4 s for 80. Two separate buckets would have
    // sent twice as fast (and been refused).
    expect(seconds).toBeGreaterThan(((n - 14) / 16) * 0.9);
  });
});

(onPg() ? describe : describe.skip)('two instances checking alerts (PostgreSQL)', () => {
  let h: AlertHarness;
  let b: TestDeps;
  beforeEach(async () => {
    h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: '5' });
    // The second instance runs with the same configuration, alert channels included, as
    // instances of one deployment do: whichever of them wins the check sends the alert.
    b = await createTestDeps(
      {
        ...h.t.dbEnv,
        TOKEN_ENCRYPTION_KEY: h.t.deps.config.tokenEncryptionKey.toString('hex'),
        APP_URL: 'https://hooks.example.com',
        TELEGRAM_API_URL: h.tg.url,
        TELEGRAM_BOT_TOKEN: h.tg.token,
        TELEGRAM_CHAT_ID: '-100',
        SMTP_URL: h.smtp.url,
        ALERT_EMAIL_TO: 'ops@example.com',
        ALERT_EMAIL_FROM: 'b24hooks <alerts@hooks.example.com>',
        ALERT_BACKLOG_THRESHOLD: '5',
      },
      { clock: h.t.clock },
    );
  });
  afterEach(async () => {
    await b.close();
    await h.close();
  });

  it('sends a backlog alert once, however many instances check at the same moment', async () => {
    const portal = await seedPortal(h.t.deps);
    await h.addEvents({ id: portal.row.id, memberId: portal.memberId }, 8);
    h.t.clock.advance(90_000);
    const monitors = [h.t.deps, b.deps, h.t.deps, b.deps].map((d) => createAlertMonitor(d));
    const reports = await Promise.all(monitors.map((m) => m.checkOnce()));
    await h.services.worker.drain();
    const sent = reports.flatMap((r) => r.sent.filter((s) => s.key === 'backlog:total'));
    expect(sent).toHaveLength(1);
    expect(
      h.tg.sent.filter((m) => /backlog/i.test(m.text) && /all portals/.test(m.text)),
    ).toHaveLength(1);
  });
});
