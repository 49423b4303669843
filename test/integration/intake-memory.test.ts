import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appParts } from '../../server/routes/index.js';
import { createServices, type Services } from '../../server/services.js';
import { buildListener } from '../../server/start.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { eventBody, seedPortal, type TestPortal } from '../helpers/event-builder.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Bytes of the JS heap still reachable after a full collection. */
function liveHeap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const MB = 1024 * 1024;
/** Forged posts per test: each carries a body just under the default BODY_LIMIT (256 KB). */
const POSTS = 120;

describe('intake memory under forged deliveries', () => {
  let t: TestDeps;
  let services: Services;
  let listener: ReturnType<typeof buildListener>;
  let portal: TestPortal;

  const post = (body: string) =>
    request(listener)
      .post('/b24/events')
      .set('Content-Type', 'application/x-www-form-urlencoded')
      .send(body);

  /** Posts `bodies` a few at a time; returns the statuses. */
  async function postAll(bodies: (i: number) => string): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < POSTS; i += 10) {
      const res = await Promise.all(
        Array.from({ length: Math.min(10, POSTS - i) }, (_, j) => post(bodies(i + j))),
      );
      statuses.push(...res.map((r) => r.status));
    }
    return statuses;
  }

  const padding = 'p'.repeat(250_000);

  beforeEach(async () => {
    t = await createTestDeps();
    services = createServices(t.deps);
    listener = buildListener(t.deps, appParts(t.deps, services));
    portal = await seedPortal(t.deps);
    // Warm up every path once, so what is measured is only what the posts leave behind.
    await post(eventBody({ portal, id: 1 }));
    await post(eventBody({ portal: { ...portal, memberId: 'warmup' } }));
  });
  afterEach(async () => {
    await services.intake.drain();
    await t.close();
  });

  it('keeps no forged body alive after answering posts under unknown member_ids', async () => {
    const before = liveHeap();
    const statuses = await postAll((i) =>
      eventBody({
        portal: { ...portal, memberId: `forged${String(i).padStart(26, '0')}` },
        data: { FIELDS: { ID: '1' }, PAD: padding },
      }),
    );
    expect(new Set(statuses)).toEqual(new Set([401]));
    await services.intake.drain();
    // 120 bodies of 250 KB are 30 MB; what stays is a small entry per member_id.
    expect(liveHeap() - before).toBeLessThan(8 * MB);
  });

  it('keeps no forged application_token alive after answering posts for a known portal', async () => {
    const before = liveHeap();
    const statuses = await postAll((i) =>
      eventBody({ portal, applicationToken: `${i}-${padding}` }),
    );
    expect(new Set(statuses)).toEqual(new Set([401]));
    await services.intake.drain();
    // 120 tokens of 250 KB are 30 MB; a real application token is 32 characters.
    expect(liveHeap() - before).toBeLessThan(8 * MB);
  });

  /**
   * Sends `body` to `path` one byte per packet (all but its last bytes), measures what stays
   * held meanwhile, then finishes it; the live heap growth and the answer's status line.
   */
  async function bytePerPacket(path: string, body: string, bytes: number) {
    const server = http.createServer(listener);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    await new Promise((r) => sock.once('connect', r));
    const before = liveHeap();
    try {
      sock.write(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
          `Content-Type: application/x-www-form-urlencoded\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
      );
      // All but the last bytes, one write (one segment, one read on the server) at a time.
      for (let i = 0; i < bytes; i++) {
        sock.write(body[i]!);
        await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setTimeout(r, 300));
      const held = liveHeap() - before;
      const answer = new Promise<string>((resolve) => {
        let text = '';
        sock.on('data', (d: Buffer) => {
          text += d.toString();
          if (text.includes('\r\n\r\n')) resolve(text);
        });
      });
      sock.write(body.slice(bytes));
      return { held, status: (await answer).split('\r\n')[0] };
    } finally {
      sock.destroy();
      await new Promise((r) => server.close(r));
    }
  }

  it('holds a body sent one byte per packet in about its own size', async () => {
    const bytes = 100_000;
    const body = eventBody({ portal, data: { FIELDS: { ID: '1' }, PAD: 'q'.repeat(bytes) } });
    const { held, status } = await bytePerPacket('/b24/events', body, bytes);
    // 100 KB as 100,000 buffers held about 20 MB.
    expect(held).toBeLessThan(4 * MB);
    expect(status).toMatch(/^HTTP\/1\.1 200/);
  });

  it("holds a stranger's install or frame-entry post sent one byte per packet in about its own size", async () => {
    // Both routes are open to anyone and read a form body of up to 256 KB / 64 KB.
    for (const [path, bytes] of [
      [t.deps.manifest.handlers.install, 100_000],
      [t.deps.manifest.handlers.app, 60_000],
    ] as const) {
      const body = `DOMAIN=x.bitrix24.com&PAD=${'q'.repeat(bytes)}&AUTH_ID=a`;
      const { held, status } = await bytePerPacket(path, body, bytes);
      // As string pieces (express.text) they held 2 MB (60 KB) and 4 MB (100 KB); now 0.2–0.4 MB.
      expect({ path, small: held < 1.5 * MB }).toEqual({ path, small: true });
      expect(status).toMatch(/^HTTP\/1\.1 [45]\d\d/);
    }
    // 160,000 one-byte packets: about 8 s alone, four times that on a loaded machine.
  }, 90_000);
});
