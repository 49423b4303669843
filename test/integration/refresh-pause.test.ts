import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId, type PortalRow } from '../../db/stores/portals.js';
import { sweepResumedLapses } from '../../server/recovery/lapses.js';
import { runCliIn } from '../helpers/cli.js';
import { seedNewDeals, startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/** The latest ONCRMDEALUPDATE event of a deal. */
const latestUpdate = (s: PaidDealScenario, id: string | undefined) =>
  s.h.t.deps
    .db('events')
    .where({ event: 'ONCRMDEALUPDATE', entity_id: id })
    .orderBy('id', 'desc')
    .first();

// Refresh errors: invalid_client and PAYMENT_REQUIRED at refresh pause the portal
// with their own reason and an alert, instead of failing each event for good; its events
// are kept and processed once a refresh succeeds again.
describe.each([
  ['invalid_client', 'invalid_client'],
  ['PAYMENT_REQUIRED', 'payment_required'],
] as const)('a refresh answered %s', (error, reason) => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario();
  });
  afterEach(async () => {
    await s.close();
  });
  const row = async () =>
    (await findPortalByMemberId(s.h.t.deps.db, s.portal.memberId)) as PortalRow;

  it('pauses the portal with its reason, keeps its events and resumes after the OAuth server does', async () => {
    const [id] = await seedNewDeals(s, 1);
    s.portal.expireAccessTokens();
    s.portal.failRefresh(error);
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    await s.drain();

    const paused = await row();
    expect(paused).toMatchObject({ status: 'installed', pause_reason: reason });
    const won = () => latestUpdate(s, id);
    expect(await won()).toMatchObject({ status: 'received' });
    expect(String((await won()).last_error)).toContain(`paused`);
    expect(s.accounting.requests).toHaveLength(0);
    // Control: the refresh was tried, and answered with that error.
    expect(s.h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token').at(-1)).toMatchObject({
      status: error === 'invalid_client' ? 400 : 402,
    });
    const logged = s.h.t.logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.alert === 'portal_paused');
    expect(logged.map((l) => l.reason)).toEqual([reason]);

    // The CLI keeps the contract's statuses and adds the reason.
    const cli = await runCliIn(s.h.t, ['portals', '--json']);
    expect(JSON.parse(cli.out)).toEqual([
      expect.objectContaining({ status: 'installed', pauseReason: reason }),
    ]);

    // While paused, no refresh is tried on every job: the next try waits.
    const tries = s.h.emu.oauthCalls.length;
    await s.drain();
    expect(s.h.emu.oauthCalls.length).toBe(tries);

    // The portal is fine again; after the pause's wait the event runs, once.
    s.portal.failRefresh(null);
    s.h.t.clock.set(s.h.t.clock.now().getTime() + 11 * 60_000);
    await s.drain();
    expect(await row()).toMatchObject({ status: 'installed', pause_reason: null });
    expect(await won()).toMatchObject({ status: 'processed' });
    expect(s.accounting.requests).toHaveLength(1);
  });

  it('takes the portal out of the pause at once when an admin installs the app again', async () => {
    const [id] = await seedNewDeals(s, 1);
    s.portal.expireAccessTokens();
    s.portal.failRefresh(error);
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    await s.drain();
    expect(await row()).toMatchObject({ pause_reason: reason });

    // The app is back on the portal (reinstalled after a removal, or paid for): the install
    // brings new tokens the OAuth server confirms, and they are used at once.
    s.portal.failRefresh(null);
    const installed = await s.portal.install();
    expect(installed.status).toBe(200);
    await s.portal.finishInstall();
    await s.drain();
    expect(await row()).toMatchObject({ status: 'installed', pause_reason: null, paused_at: null });
    const [d] = await s.portal.emit('ONCRMDEALADD', { FIELDS: { ID: id } });
    expect(d!.status).toBe(200);
    // The held event runs at the time its pause set, with the new tokens and no refresh.
    const refreshes = s.h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token').length;
    s.h.t.clock.set(s.h.t.clock.now().getTime() + 11 * 60_000);
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
    expect(s.h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token')).toHaveLength(
      refreshes,
    );
  });
});

/**
 * A portal whose subscription ends refuses the app's REST calls with 401 PAYMENT_REQUIRED
 * while its access token is still valid (test/emulator/state.ts `subscriptionEnded` cites
 * it). Read as any other 4xx, every event that read the deal or wrote to the portal in that
 * hour failed for good, while the same lapse found at the next refresh paused the portal.
 * While it lasts, Bitrix24 sends the app nothing (CORE rest lib/event/callback.php skips an
 * app whose payment expired, offline records too): its changes are swept once the plan takes
 * the app back (server/recovery/lapses.ts); before that they were lost.
 */
describe('a subscription that ends while the access token is valid', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario();
  });
  afterEach(async () => {
    await s.close();
  });
  const row = async () =>
    (await findPortalByMemberId(s.h.t.deps.db, s.portal.memberId)) as PortalRow;

  it('pauses the portal as a refused refresh does, keeps its events and resumes when renewed', async () => {
    const [id] = await seedNewDeals(s, 1);
    // Delivered just before the subscription ends, processed after.
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    s.portal.endSubscription(true);
    await s.drain();
    // Control: the call was made, with a valid token, and refused so.
    const refused = s.portal.calls.filter((c) => c.error === 'PAYMENT_REQUIRED');
    expect(refused.length).toBeGreaterThan(0);
    expect(await row()).toMatchObject({ status: 'installed', pause_reason: 'payment_required' });
    const won = () => latestUpdate(s, id);
    expect(await won()).toMatchObject({ status: 'received' });
    expect(String((await won()).last_error)).toContain('PAYMENT_REQUIRED');
    expect(s.accounting.requests).toHaveLength(0);
    const logged = s.h.t.logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.alert === 'portal_paused');
    expect(logged.map((l) => l.reason)).toEqual(['payment_required']);

    s.portal.endSubscription(false);
    s.h.t.clock.set(s.h.t.clock.now().getTime() + 11 * 60_000);
    await s.drain();
    expect(await row()).toMatchObject({ status: 'installed', pause_reason: null });
    expect(await won()).toMatchObject({ status: 'processed' });
    expect(s.accounting.requests).toHaveLength(1);
  });

  it('sweeps the lapse once the plan takes the app back: a change Bitrix24 did not send runs', async () => {
    const [id] = await seedNewDeals(s, 1);
    const lastDelivery = Number(
      (await s.h.t.deps.db('events').max({ at: 'received_at' }).first())!.at,
    );
    s.portal.endSubscription(true);
    const change = await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    // Nothing arrives while the app's payment has expired.
    expect(change.deliveries).toHaveLength(0);
    await s.drain();
    expect(await latestUpdate(s, id)).toBeUndefined();
    // The app's next call (the offline net's read, a proof, a step) meets the lapse.
    await expect(s.h.t.deps.bitrix.call(await row(), 'profile', {})).rejects.toMatchObject({
      name: 'PausedError',
    });
    expect(await row()).toMatchObject({
      pause_reason: 'payment_required',
      lapse_since: lastDelivery,
    });
    const sweeper = s.h.services.recovery.sweeper;
    // Still paused: nothing to sweep yet.
    expect(await sweepResumedLapses(s.h.t.deps, sweeper, 5 * 60_000)).toBe(0);

    s.portal.endSubscription(false);
    s.h.t.clock.set(s.h.t.clock.now().getTime() + 11 * 60_000);
    await s.h.t.deps.bitrix.call(await row(), 'profile', {});
    expect(await row()).toMatchObject({ pause_reason: null });
    expect(await sweepResumedLapses(s.h.t.deps, sweeper, 5 * 60_000)).toBe(1);
    await sweeper.idle();
    await s.drain();
    expect(await latestUpdate(s, id)).toMatchObject({ status: 'processed', source: 'sweep' });
    expect(s.accounting.requests).toHaveLength(1);
    const gap = await s.h.t.deps.db('recovery_gaps').orderBy('id', 'desc').first();
    expect(gap).toMatchObject({ trigger: 'resume', status: 'done' });
    // Once: the mark is gone with the sweep.
    expect(await row()).toMatchObject({ lapse_since: null });
    expect(await sweepResumedLapses(s.h.t.deps, sweeper, 5 * 60_000)).toBe(0);
  });

  it('does not sweep a lapse from before an uninstall into a later install', async () => {
    await seedNewDeals(s, 1);
    s.portal.endSubscription(true);
    await expect(s.h.t.deps.bitrix.call(await row(), 'profile', {})).rejects.toMatchObject({
      name: 'PausedError',
    });
    expect((await row()).lapse_since).not.toBeNull();
    s.portal.endSubscription(false);
    await s.portal.uninstall({ clean: false });
    // The uninstall waits with the pause (its token cannot be checked meanwhile).
    s.h.t.clock.set(s.h.t.clock.now().getTime() + 11 * 60_000);
    await s.drain();
    // Control: the uninstall was taken.
    expect(await row()).toMatchObject({ status: 'uninstalled', lapse_since: null });
  });
});

/**
 * A client id the OAuth server does not know (B24_CLIENT_ID changed, or mistyped in the
 * environment a start read) is answered HTTP 200 `{"error": "wrong_client"}`, not
 * `invalid_client` (test/emulator/oauth-server.ts cites a real server's answer). Read as any
 * other error, every waiting event failed for good and no alert named the credentials.
 */
describe('a refresh answered wrong_client', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario();
  });
  afterEach(async () => {
    await s.close();
  });

  it('pauses the portal as for invalid_client, keeps its events and resumes with the right id', async () => {
    const [id] = await seedNewDeals(s, 1);
    s.portal.expireAccessTokens();
    // The configuration is read at start; what a restart with another B24_CLIENT_ID gives.
    const b24 = s.h.t.deps.config.b24 as { clientId: string | undefined };
    const right = b24.clientId;
    b24.clientId = 'local.changed';
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    await s.drain();
    const won = () => latestUpdate(s, id);
    // Control: the refresh was made with that id and answered as a real server answers it.
    expect(s.h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token').at(-1)).toMatchObject({
      clientId: 'local.changed',
      status: 200,
    });
    expect(await findPortalByMemberId(s.h.t.deps.db, s.portal.memberId)).toMatchObject({
      status: 'installed',
      pause_reason: 'invalid_client',
    });
    expect(await won()).toMatchObject({ status: 'received' });
    expect(String((await won()).last_error)).toContain('paused');
    expect(s.accounting.requests).toHaveLength(0);

    b24.clientId = right;
    s.h.t.clock.set(s.h.t.clock.now().getTime() + 11 * 60_000);
    await s.drain();
    expect(await won()).toMatchObject({ status: 'processed' });
    expect(s.accounting.requests).toHaveLength(1);
  });
});

/**
 * The app removed from the portal, its ONAPPUNINSTALL lost on the way. Bitrix24 then answers
 * the app's token with APPLICATION_NOT_FOUND, before it looks at the token's expiry
 * (test/emulator/rest-server.ts cites the core), not with invalid_token: the emulator used to
 * say invalid_token, and the app refreshed and paused. Against the real answer each waiting
 * event failed for good at its first read, one failed-events digest after another.
 */
describe('the app removed with its ONAPPUNINSTALL lost', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario();
  });
  afterEach(async () => {
    await s.close();
  });

  // The portal's answer depends on its cache of the OAuth server's word about the token
  // (an hour): APPLICATION_NOT_FOUND while it holds the token, ERROR_OAUTH once it does not.
  it.each([
    ['APPLICATION_NOT_FOUND', false],
    ['ERROR_OAUTH', true],
  ])(
    'asks the OAuth server after %s, which pauses the portal (invalid_client), and keeps its events',
    async (answer, forgotten) => {
      const [id] = await seedNewDeals(s, 1);
      await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
      await s.portal.uninstall({ clean: false });
      if (forgotten) s.portal.forgetTokenChecks();
      // The uninstall never arrived.
      const db = s.h.t.deps.db;
      const lost = await db('events').where({ event: 'ONAPPUNINSTALL' }).select('id');
      expect(lost).toHaveLength(1);
      await db('jobs')
        .whereIn(
          'event_id',
          lost.map((r) => r.id as number),
        )
        .del();
      await db('events')
        .whereIn(
          'id',
          lost.map((r) => r.id as number),
        )
        .del();
      await s.drain();

      const won = await db('events')
        .where({ event: 'ONCRMDEALUPDATE', entity_id: id })
        .orderBy('id', 'desc')
        .first();
      // Control: the read was made and refused as Bitrix24 refuses it.
      expect(s.portal.calls.some((c) => c.error === answer)).toBe(true);
      expect(won).toMatchObject({ status: 'received' });
      expect(String(won.last_error)).toContain('paused');
      expect(await findPortalByMemberId(db, s.portal.memberId)).toMatchObject({
        status: 'installed',
        pause_reason: 'invalid_client',
      });
      expect(s.accounting.requests).toHaveLength(0);
    },
  );

  it.each([
    [401, 'APPLICATION_NOT_FOUND', 'Application not found'],
    [404, 'ERROR_METHOD_NOT_FOUND', 'Method not found!'],
  ])('never reads %s %s as a deleted record', async (status, error, description) => {
    const [id] = await seedNewDeals(s, 1);
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    // However often the read is made (a batch, then alone, then after a refresh).
    s.portal.failNext('crm.deal.get', { status, error, description }, 20);
    await s.drain();
    const won = await s.h.t.deps
      .db('events')
      .where({ event: 'ONCRMDEALUPDATE', entity_id: id })
      .orderBy('id', 'desc')
      .first();
    expect(s.portal.calls.some((c) => c.error === error)).toBe(true);
    expect(won.status).not.toBe('skipped');
    expect(String(won.last_error)).toContain(error);
  });
});

/**
 * A portal that cannot reach its authorization server for a moment answers any token 401
 * CONNECTION_ERROR "Error connecting to authorization server" (CORE rest lib/oauth/auth.php
 * `onRestCheckAuth`). The event failed for good at its first read, as if the request were
 * wrong; it is the portal's moment, so the read is made again later.
 */
describe('a portal that cannot reach its authorization server for a moment', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario();
  });
  afterEach(async () => {
    await s.close();
  });

  it('reads the record again later, and the steps run', async () => {
    const [id] = await seedNewDeals(s, 1);
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    // The check is the request's, before any method: a batch is refused whole, as a call alone.
    const refusal = {
      status: 401,
      error: 'CONNECTION_ERROR',
      description: 'Error connecting to authorization server',
    };
    s.portal.failNext('batch', refusal);
    s.portal.failNext('crm.deal.get', refusal);
    await s.drain();
    // Control: the read was refused as the portal refuses it.
    expect(s.portal.calls.some((c) => c.error === 'CONNECTION_ERROR')).toBe(true);
    const won = () =>
      s.h.t.deps
        .db('events')
        .where({ event: 'ONCRMDEALUPDATE', entity_id: id })
        .orderBy('id', 'desc')
        .first();
    expect(await won()).toMatchObject({ status: 'received' });
    expect(String((await won()).last_error)).toContain('CONNECTION_ERROR');
    s.h.t.clock.set(s.h.t.clock.now().getTime() + 10 * 60_000);
    await s.drain();
    expect(await won()).toMatchObject({ status: 'processed' });
    expect(s.accounting.requests).toHaveLength(1);
  });
});
