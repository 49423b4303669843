import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { runAction, type ActionContext } from '../../server/actions/index.js';
import { createHttpGuard, type HostResolver } from '../../server/lib/http-guard.js';
import { parsePrivateHosts } from '../../server/lib/address-policy.js';
import { silentLogger } from '../../server/lib/logger.js';
import { PermanentError } from '../../server/lib/retry-errors.js';
import type { HttpAction } from '../../server/rules/model.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { tempDir } from '../helpers/temp-dir.js';
import { testConfig } from '../helpers/test-deps.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * Private addresses (server/rules/README.md#private-addresses): an `http` step once reached a
 * loopback listener directly, through a redirect from an allowed host, and through a name that
 * resolves to it. `victim` is that listener; it is outside ACTION_PRIVATE_HOSTS in every refusal
 * below, and each refusal has a control: the same step reaches it once its address is allowed.
 */
describe('http steps and private addresses', () => {
  let victim: HttpSink;
  let front: HttpSink;
  const tmp = tempDir();
  /** `front.test` is the allowed host (loopback too); `rebind.test` resolves to the victim. */
  const resolver: HostResolver = async (host) => {
    if (host === 'front.test' || host === 'rebind.test')
      return [{ address: '127.0.0.1', family: 4 }];
    if (host === 'mixed.test') {
      return [
        { address: '93.184.215.14', family: 4 },
        { address: '127.0.0.1', family: 4 },
      ];
    }
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  };
  const guards: Array<{ close(): Promise<void> }> = [];
  const ctx = (privateHosts: string): ActionContext => {
    const config = testConfig(tmp.dir, { ACTION_PRIVATE_HOSTS: privateHosts });
    const guard = createHttpGuard(config.actions.privateHosts, resolver);
    guards.push(guard);
    return { config, logger: silentLogger(), idempotencyKey: 'k', guard };
  };
  const step = (url: string): HttpAction => ({ type: 'http', method: 'POST', url, body: { a: 1 } });
  const victimPort = () => new URL(victim.url).port;
  const run = (url: string, privateHosts: string) =>
    runAction(step(url), step(url), ctx(privateHosts));

  beforeAll(async () => {
    victim = await startHttpSink(() => ({ body: { secret: 'internal answer' } }));
    front = await startHttpSink((req) =>
      req.url.startsWith('/to-victim')
        ? { status: 302, headers: { location: `http://127.0.0.1:${victimPort()}/admin` } }
        : req.url.startsWith('/to-rebind')
          ? { status: 307, headers: { location: `http://rebind.test:${victimPort()}/admin` } }
          : req.url.startsWith('/loop')
            ? { status: 302, headers: { location: '/loop' } }
            : { body: { ok: true } },
    );
  });
  afterEach(async () => {
    victim.requests.length = 0;
    front.requests.length = 0;
    await Promise.all(guards.splice(0).map((g) => g.close()));
  });
  afterAll(async () => {
    await Promise.all([victim.close(), front.close()]);
    tmp.cleanup();
  });

  it('closes its dispatcher once however often it is closed (deps.close() may run twice)', async () => {
    const guard = createHttpGuard(parsePrivateHosts([]));
    await guard.close();
    await expect(guard.close()).resolves.not.toThrow();
  });

  it('refuses a loopback address in the URL, permanently, naming the reason', async () => {
    const err = await run(`${victim.url}/admin`, '').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toMatch(
      /refused: 127\.0\.0\.1 is a loopback address \(not in ACTION_PRIVATE_HOSTS\)/,
    );
    expect(victim.requests).toHaveLength(0);
    // Control: the same step reaches the listener once its address is allowed.
    await run(`${victim.url}/admin`, '127.0.0.1');
    expect(victim.requests).toHaveLength(1);
  });

  it('refuses the IPv4-mapped IPv6 form of loopback as well', async () => {
    const err = await run(`http://[::ffff:127.0.0.1]:${victimPort()}/admin`, '').catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(/127\.0\.0\.1 is a loopback address/);
    expect(victim.requests).toHaveLength(0);
  });

  it('refuses a redirect from an allowed host to the listener', async () => {
    const err = await run(`http://front.test:${new URL(front.url).port}/to-victim`, 'front.test')
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toMatch(/127\.0\.0\.1 is a loopback address/);
    // The allowed host was asked (the step ran); the listener behind it received nothing.
    expect(front.requests).toHaveLength(1);
    expect(victim.requests).toHaveLength(0);
    // Control: with the listener's address allowed too, the same redirect reaches it.
    await run(`http://front.test:${new URL(front.url).port}/to-victim`, 'front.test,127.0.0.1');
    expect(victim.requests).toHaveLength(1);
    expect(victim.requests[0]!.method).toBe('GET');
  });

  it('refuses a host name that resolves to the listener, also on a redirect hop', async () => {
    const direct = await run(`http://rebind.test:${victimPort()}/admin`, '').catch(
      (e: unknown) => e,
    );
    // Which address a name has inside our network is not the tenant's to learn.
    expect((direct as Error).message).toMatch(/rebind\.test resolves to a loopback address/);
    expect((direct as Error).message).not.toContain('127.0.0.1');
    const hop = await run(`http://front.test:${new URL(front.url).port}/to-rebind`, 'front.test')
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect((hop as Error).message).toMatch(/rebind\.test resolves to a loopback address/);
    expect((hop as Error).message).not.toContain('127.0.0.1');
    expect(front.requests).toHaveLength(1);
    expect(victim.requests).toHaveLength(0);
    // Control: allowed by name, the same host reaches the listener.
    await run(`http://rebind.test:${victimPort()}/admin`, 'rebind.test');
    expect(victim.requests).toHaveLength(1);
  });

  it('refuses a name with any private address among public ones', async () => {
    const err = await run(`http://mixed.test:${victimPort()}/`, '').catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/mixed\.test resolves to a loopback address/);
    expect(victim.requests).toHaveLength(0);
  });

  it('refuses metadata, private, CGNAT, unique-local, multicast, unspecified and cloud-internal addresses without connecting', async () => {
    for (const [host, what] of [
      ['169.254.169.254', 'link-local'],
      ['10.1.2.3', 'private'],
      ['192.168.0.1', 'private'],
      ['172.16.5.4', 'private'],
      ['100.64.0.1', 'carrier-grade NAT'],
      ['[fd00::1]', 'unique-local'],
      ['[fe80::1]', 'link-local'],
      ['224.0.0.1', 'multicast'],
      ['0.0.0.0', 'unspecified'],
      ['[::]', 'unspecified'],
      ['[::1]', 'loopback'],
      ['[::ffff:169.254.169.254]', 'link-local'],
      ['[::7f00:1]', 'IPv4-compatible IPv6'],
      ['[::a00:1]', 'IPv4-compatible IPv6'],
      ['168.63.129.16', "cloud host's internal"],
    ] as const) {
      const err = await run(`http://${host}/latest/meta-data/`, '').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toContain(`${what} address`);
    }
  });

  it('stops after three redirects', async () => {
    const err = await run(`http://front.test:${new URL(front.url).port}/loop`, 'front.test').catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(/more than 3 redirects/);
    expect(front.requests).toHaveLength(4);
  });

  it('reads at most 1 MB of an answer and keeps 10,000 characters', async () => {
    victim.handle(() => ({ body: 'x'.repeat(3 * 1024 * 1024) }));
    const result = await run(`${victim.url}/big`, '127.0.0.1');
    expect(typeof result.response.body).toBe('string');
    expect((result.response.body as string).length).toBe(10_000);
    victim.handle(() => ({ body: { ok: true } }));
  });

  it('parses ACTION_PRIVATE_HOSTS entries and names a bad one', () => {
    expect(parsePrivateHosts(['10.0.0.0/8', 'ERP.internal', '::1', 'fd00::/8'])).toEqual({
      hosts: ['erp.internal'],
      ranges: ['10.0.0.0/8', '::1/128', 'fd00::/8'],
    });
    expect(() => testConfig(tmp.dir, { ACTION_PRIVATE_HOSTS: '10.0.0.0/99' })).toThrow(
      /ACTION_PRIVATE_HOSTS: "10.0.0.0\/99"/,
    );
  });
});

describe('a rule whose http step aims at a private address', () => {
  let s: PaidDealScenario;
  beforeAll(async () => {
    // The paid-deal map posts to stand-ins on loopback; this time loopback is not allowed.
    s = await startPaidDealScenario(undefined, { ACTION_PRIVATE_HOSTS: '' });
  });
  afterAll(async () => {
    await s.close();
  });

  it('fails the step at once, naming the rule, the step and the reason, and sends nothing', async () => {
    const deal = await s.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW', OPPORTUNITY: '10' });
    await s.drain();
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await s.drain();
    const db = s.h.t.deps.db;
    const event = await db('events').where({ event: 'ONCRMDEALUPDATE' }).first();
    expect(event.status).toBe('failed');
    expect(event.attempts).toBe(1);
    expect(event.last_error).toMatch(
      /Paid deal: invoice, shipment, SMS \/ invoice: POST http:\/\/127\.0\.0\.1:\d+\/api\/invoices refused: 127\.0\.0\.1 is a loopback address \(not in ACTION_PRIVATE_HOSTS\)/,
    );
    const runs = await db('action_runs').orderBy('id');
    expect(runs.map((r) => [r.step_name, r.status])).toEqual([['invoice', 'failed']]);
    expect(s.accounting.requests).toHaveLength(0);
    expect(s.logistics.requests).toHaveLength(0);
  });
});
