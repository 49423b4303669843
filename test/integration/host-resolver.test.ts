import { execFileSync } from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHostResolver, type HostAddress } from '../../server/lib/host-resolver.js';
import { createHttpGuard } from '../../server/lib/http-guard.js';
import { parsePrivateHosts } from '../../server/lib/address-policy.js';
import { startDnsStandin, type DnsStandin } from '../helpers/dns-standin.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Settles within `ms`, or says it did not. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

const POOL = Number(process.env.UV_THREADPOOL_SIZE ?? 4);

/**
 * Holds every libuv threadpool thread: opening a FIFO for reading blocks its thread until a
 * writer comes, which `release` is (opened on the main thread, non-blocking).
 */
function holdThreadpool(dir: string): { release(): void } {
  const fifos = Array.from({ length: POOL }, (_, i) => path.join(dir, `fifo-${i}`));
  const opened = fifos.map((f) => {
    execFileSync('mkfifo', [f]);
    return fs.promises.open(f, 'r');
  });
  return {
    release() {
      for (const f of fifos) {
        fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      }
      void Promise.all(opened).then((hs) => Promise.all(hs.map((h) => h.close())));
    },
  };
}

describe('host names of rule steps and portals', () => {
  let dnsServer: DnsStandin;
  let sink: HttpSink;
  let dir: ReturnType<typeof tempDir>;
  beforeAll(async () => {
    dnsServer = await startDnsStandin();
    dnsServer.names.set('ok.test', { a: ['127.0.0.1'], aaaa: ['::1'] });
    dnsServer.names.set('v6.test', { aaaa: ['::1'] });
    dnsServer.hang = (name) => name.startsWith('hang-');
    sink = await startHttpSink();
    dir = tempDir('host-resolver-');
  });
  afterAll(async () => {
    await dnsServer.close();
    await sink.close();
    dir.cleanup();
  });

  it('asks DNS for A and AAAA at once and gives IPv4 first', async () => {
    const resolve = createHostResolver({ servers: [dnsServer.server] });
    expect(await resolve('ok.test')).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    expect(await resolve('v6.test')).toEqual([{ address: '::1', family: 6 }]);
  });

  it('resolves while every threadpool thread is held, where dns.lookup waits', async () => {
    const resolve = createHostResolver({ servers: [dnsServer.server] });
    const held = holdThreadpool(dir.dir);
    try {
      // Control: the pool is full, so getaddrinfo (dns.lookup, the old resolver) cannot run.
      const lookup = dns.promises.lookup('localhost', { all: true });
      expect(await within(lookup, 500)).toBe('pending');
      // A rule step's request through the guard resolves its host and reaches it meanwhile.
      const guard = createHttpGuard(parsePrivateHosts(['ok.test']), resolve);
      try {
        const res = await within(
          guard.fetch(sink.url.replace('127.0.0.1', 'ok.test') + '/pool-full', { method: 'POST' }),
          3_000,
        );
        expect(res === 'pending' ? res : res.status).toBe(200);
      } finally {
        await guard.close();
      }
      expect(sink.requests.map((r) => r.url)).toContain('/pool-full');
    } finally {
      held.release();
    }
  });

  it('a name whose server never answers fails in bounded time and holds at most the lanes', async () => {
    // The system's resolution hangs for these names too (its own server drops them as well).
    let asked = 0;
    let running = 0;
    let most = 0;
    const stuck: Array<() => void> = [];
    const fallback = (host: string) => {
      if (host === 'erp') return Promise.resolve([{ address: '10.1.2.3', family: 4 }]);
      asked++;
      running++;
      most = Math.max(most, running);
      return new Promise<HostAddress[]>((resolve) => {
        stuck.push(() => {
          running--;
          resolve([]);
        });
        void host;
      });
    };
    const resolve = createHostResolver({
      servers: [dnsServer.server],
      timeoutMs: 100,
      tries: 1,
      fallback,
      laneWaitMs: 300,
      systemWaitMs: 500,
    });
    const started = Date.now();
    const hanging = Array.from({ length: 12 }, (_, i) =>
      resolve(`hang-${i}.test`).then(
        () => 'resolved',
        (e: NodeJS.ErrnoException) => e.code,
      ),
    );
    // Another portal's name resolves at once meanwhile.
    expect(await within(resolve('ok.test'), 1_000)).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    // A name DNS says it does not know goes to the system in the other lanes, and resolves
    // while the silent names hold theirs (an internal name of another portal).
    expect(await within(resolve('erp'), 1_000)).toEqual([{ address: '10.1.2.3', family: 4 }]);
    const codes = await Promise.all(hanging);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(codes.every((c) => c === 'ETIMEOUT')).toBe(true);
    // Tried: DNS was asked for every name, and the system for as many as the lane allowed.
    expect(dnsServer.asked.get('hang-11.test')).toBeGreaterThan(0);
    expect(asked).toBe(1);
    expect(most).toBe(1);
    expect(resolve.stats()).toMatchObject({ inFlight: 1, waiting: 0 });
    for (const free of stuck) free();
    await new Promise((r) => setImmediate(r));
    expect(resolve.stats().inFlight).toBe(0);
  });

  it('asks the system for what DNS does not know, once per name at a time, and remembers it', async () => {
    const systemAsked: string[] = [];
    const resolve = createHostResolver({
      servers: [dnsServer.server],
      fallback: async (host) => {
        systemAsked.push(host);
        if (host === 'erp') return [{ address: '10.1.2.3', family: 4 }];
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      },
    });
    const both = await Promise.all([resolve('erp'), resolve('erp')]);
    expect(both).toEqual([
      [{ address: '10.1.2.3', family: 4 }],
      [{ address: '10.1.2.3', family: 4 }],
    ]);
    expect(systemAsked).toEqual(['erp']);
    const dnsAsked = dnsServer.asked.get('erp');
    await resolve('erp');
    // Remembered: straight to the system, DNS not asked again.
    expect(dnsServer.asked.get('erp')).toBe(dnsAsked);
    expect(systemAsked).toEqual(['erp', 'erp']);
    await expect(resolve('nowhere.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('reads the hosts file first, as the system does: a pinned name stays pinned', async () => {
    const file = `${dir.dir}/hosts`;
    fs.writeFileSync(
      file,
      '# pinned\n10.9.9.9  Pinned.test other.test # comment\n::1 pinned.test\n',
    );
    dnsServer.names.set('pinned.test', { a: ['127.0.0.2'] });
    const resolve = createHostResolver({ servers: [dnsServer.server], hostsFile: file });
    const before = dnsServer.asked.get('pinned.test') ?? 0;
    expect(await resolve('pinned.test.')).toEqual([
      { address: '10.9.9.9', family: 4 },
      { address: '::1', family: 6 },
    ]);
    expect(dnsServer.asked.get('pinned.test') ?? 0).toBe(before);
    // Control: without the file, DNS's answer.
    const plain = createHostResolver({ servers: [dnsServer.server], hostsFile: `${file}-none` });
    expect(await plain('pinned.test')).toEqual([{ address: '127.0.0.2', family: 4 }]);
  });

  it('the system resolver still reads /etc/hosts (localhost)', async () => {
    const resolve = createHostResolver({ timeoutMs: 500, tries: 1 });
    const found = await resolve('localhost');
    expect(found.some((f) => f.address === '127.0.0.1' || f.address === '::1')).toBe(true);
  });
});
