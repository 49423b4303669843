import fs from 'node:fs';
import path from 'node:path';
import { statusCommand } from '../../server/cli/commands.js';
import type { Env } from '../../server/config.js';
import { projectRoot } from '../../server/lib/project-root.js';
import type { EventMap } from '../../server/rules/model.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import type { PortalOptions } from '../emulator/types.js';
import { startHttpSink, type HttpSink } from './http-sink.js';
import { installPortal, startInstallHarness, type InstallHarness } from './install-harness.js';

export interface PaidDealScenario {
  h: InstallHarness;
  portal: Awaited<ReturnType<InstallHarness['addPortal']>>;
  accounting: HttpSink;
  logistics: HttpSink;
  sms: HttpSink;
  /** Moves the emulated portal's clock (its event `ts`) forward. */
  shiftPortalTime(ms: number): void;
  /** The emulated portal's clock, ms (its event `ts` is this in whole seconds). */
  portalNow(): number;
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
 * The app installed on an emulated portal (install POST, installFinish, ONAPPINSTALL proven),
 * the sample "Paid deal" map as the default map, and local stand-ins for accounting,
 * logistics and the SMS gateway. `env` adds to (or overrides) the app's environment, e.g.
 * `B24_EVENTS` to bind more than the manifest's events at install.
 */
export async function startPaidDealScenario(
  map?: (urls: { accounting: string; logistics: string }) => EventMap,
  env: Env = {},
  portalOptions?: PortalOptions,
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
  const { portal, settle: drain } = await installPortal(h, portalOptions);
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
    portalNow: () => Date.now() + offset,
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
