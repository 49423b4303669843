import fs from 'node:fs';
import { afterEach, beforeEach, expect } from '@jest/globals';
import path from 'node:path';
import { statusCommand } from '../../server/cli/commands.js';
import type { Env } from '../../server/config.js';
import { projectRoot } from '../../server/lib/project-root.js';
import type { EventMap } from '../../server/rules/model.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { saveRuleMap } from '../../db/stores/rules.js';
import { startHttpSink, type HttpSink } from './http-sink.js';
import { startInstallHarness, type InstallHarness } from './install-harness.js';

export interface PaidDealScenario {
  h: InstallHarness;
  portal: Awaited<ReturnType<InstallHarness['addPortal']>>;
  accounting: HttpSink;
  logistics: HttpSink;
  sms: HttpSink;
  /** Moves the emulated portal's clock (its event `ts`) forward. */
  shiftPortalTime(ms: number): void;
  /** Runs the worker until nothing is due. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** The sample "Paid deal" map with its URLs pointed at local sinks. */
export function paidDealMap(urls: { accounting: string; logistics: string }): EventMap {
  const raw = fs
    .readFileSync(path.join(projectRoot(), 'server', 'rules', 'samples', 'paid-deal.json'), 'utf8')
    .replace('https://accounting.example', urls.accounting)
    .replace('https://logistics.example', urls.logistics);
  const v = validateEventMap(JSON.parse(raw));
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.map;
}

/**
 * A fresh paid-deal scenario for every test of the suite that calls it, with offline
 * events `on` or `off` and the app's clock set to the portal's, as in production (the
 * portal's DATE_MODIFY and TIMESTAMP_X against our received_at). `use` gets each one;
 * the function returned lets a test swap in a scenario of its own (the old one is closed,
 * the new one is closed after the test).
 */
export function eachRecoveryScenario(
  offline: 'on' | 'off',
  use: (s: PaidDealScenario) => void,
): (next: PaidDealScenario) => Promise<void> {
  let s: PaidDealScenario | undefined;
  beforeEach(async () => {
    s = await startPaidDealScenario(undefined, { B24_OFFLINE_EVENTS: offline });
    s.h.t.clock.set(Date.now());
    use(s);
  });
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });
  return async (next) => {
    await s?.close();
    s = next;
    use(next);
  };
}

/**
 * The app installed on an emulated portal (install POST, installFinish, ONAPPINSTALL proven),
 * the sample "Paid deal" map as the default map, and local stand-ins for accounting,
 * logistics and the SMS gateway. `env` adds to (or overrides) the app's environment, e.g.
 * `B24_EVENTS` to bind more than the manifest's events at install.
 */
export async function startPaidDealScenario(
  map?: (urls: { accounting: string; logistics: string }) => EventMap,
  env: Env = {},
): Promise<PaidDealScenario> {
  const accounting = await startHttpSink(() => ({
    status: 201,
    body: { id: `INV-${Math.floor(Math.random() * 1e6)}` },
  }));
  const logistics = await startHttpSink(() => ({ status: 200, body: { shipment: 'SHP-1' } }));
  const sms = await startHttpSink(() => ({ status: 200, body: { queued: true } }));
  let offset = 0;
  const h = await startInstallHarness(
    {
      SMS_PROVIDER: 'generic',
      SMS_URL: `${sms.url}/send`,
      SMS_TOKEN: 'sms-secret-token',
      RETRY_BASE_SECONDS: '1',
      ...env,
    },
    { now: () => Date.now() + offset },
  );
  const portal = await h.addPortal();
  const res = await portal.install();
  if (res.status !== 200) throw new Error(`install answered ${res.status}: ${res.body}`);
  await portal.finishInstall();
  const drain = async () => {
    await portal.whenIdle();
    await h.services.intake.drain();
    await h.services.worker.drain();
  };
  await drain();
  const urls = { accounting: accounting.url, logistics: logistics.url };
  await saveRuleMap(h.t.deps.db, undefined, map ? map(urls) : paidDealMap(urls), h.t.clock.now());
  return {
    h,
    portal,
    accounting,
    logistics,
    sms,
    drain,
    shiftPortalTime(ms) {
      offset += ms;
    },
    async close() {
      await h.close();
      await Promise.all([accounting.close(), logistics.close(), sms.close()]);
    },
  };
}

/** The environment a CLI command needs to reach the scenario's emulated portal and stand-ins. */
export function scenarioCliEnv(s: PaidDealScenario): Record<string, string> {
  const c = s.h.t.deps.config;
  return {
    B24_PORTAL_HOSTS: '127.0.0.1:*',
    B24_OAUTH_SERVERS: s.h.emu.oauthUrl,
    B24_CLIENT_ID: c.b24.clientId ?? '',
    B24_CLIENT_SECRET: c.b24.clientSecret ?? '',
    SMS_PROVIDER: 'generic',
    SMS_URL: `${s.sms.url}/send`,
    SMS_TOKEN: 'sms-secret-token',
  };
}

/**
 * Deals at NEW with a contact, seen online while the app runs (so they have snapshots);
 * then the portal's clock moves a minute on, so later changes are not covered by them.
 */
export async function seedNewDeals(s: PaidDealScenario, n: number): Promise<string[]> {
  const contact = await s.portal.addContact({
    NAME: 'Ann',
    PHONE: [{ VALUE: '+15550001111', VALUE_TYPE: 'WORK' }],
  });
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const deal = await s.portal.addDeal({
      TITLE: `Order ${i}`,
      STAGE_ID: 'NEW',
      OPPORTUNITY: '100.00',
      CONTACT_ID: contact.id,
    });
    ids.push(deal.id);
  }
  await s.drain();
  s.shiftPortalTime(60_000);
  return ids;
}

/** What `b24hooks status --json` prints for the scenario's database. */
export async function scenarioStatus(s: PaidDealScenario): Promise<Record<string, unknown>> {
  let out = '';
  await statusCommand({
    deps: s.h.t.deps,
    json: true,
    flags: {},
    positionals: [],
    io: { out: (t) => (out += t), err: () => undefined },
  });
  return JSON.parse(out) as Record<string, unknown>;
}

/**
 * Each deal in `won` got the paid-deal map's actions exactly once: one invoice, one
 * shipment, one SMS and one timeline comment per deal, every action run succeeded, and
 * nothing else ran.
 */
export async function expectEachWonDealActedOnOnce(
  s: PaidDealScenario,
  won: string[],
): Promise<void> {
  expect(s.accounting.requests).toHaveLength(won.length);
  const dealIds = s.accounting.requests.map(
    (r) => (JSON.parse(r.body) as { dealId: string }).dealId,
  );
  expect(new Set(dealIds)).toEqual(new Set(won));
  expect(s.logistics.requests).toHaveLength(won.length);
  expect(s.sms.requests).toHaveLength(won.length);
  const runs = await s.h.t.deps.db('action_runs').select('status');
  expect(runs).toHaveLength(4 * won.length);
  expect(runs.every((r: { status: string }) => r.status === 'succeeded')).toBe(true);
  for (const id of won) {
    expect(s.portal.timeline.filter((c) => c.ENTITY_ID === id)).toHaveLength(1);
  }
}

/**
 * While the app is down, 100 updates of the 40 deals `ids`: every title changes, and the
 * first 30 deals move to WON, then get a comment. Every online delivery of them is lost
 * (not answered 200). Returns the deals won; the app stays paused.
 */
export async function updateDealsWhileDown(s: PaidDealScenario, ids: string[]): Promise<string[]> {
  await s.h.pauseApp();
  const won = ids.slice(0, 30);
  let updates = 0;
  for (const [i, id] of ids.entries()) {
    await s.portal.updateDeal(id, { TITLE: `Order ${i} (edited)` });
    updates++;
  }
  for (const id of won) {
    await s.portal.updateDeal(id, { STAGE_ID: 'WON' });
    updates++;
  }
  for (const id of won) {
    await s.portal.updateDeal(id, { COMMENTS: 'paid' });
    updates++;
  }
  expect(updates).toBe(100);
  await s.portal.whenIdle();
  const lost = s.portal.deliveries.filter((d) => d.event === 'ONCRMDEALUPDATE' && d.status !== 200);
  expect(lost).toHaveLength(100);
  return won;
}
