import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHttpServer } from '../../server/http-server.js';

/**
 * A request Node's parser refuses (here: headers over its 16 KB limit) while the client is
 * still sending its body. With Node's default the server destroyed the socket right after
 * writing the 431; the rest of the body then met a closed socket, the kernel answered it with
 * a reset, and the client's next write failed with ECONNRESET/EPIPE before it had read the
 * answer (the one reset in the reliability suite's hostile barrage).
 */
describe('a request refused by the HTTP parser', () => {
  let server: ReturnType<typeof createHttpServer>;
  let port: number;
  let handled = 0;
  let last: net.Socket | undefined;
  beforeAll(async () => {
    server = createHttpServer((req, res) => {
      handled += 1;
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    server.on('connection', (s: net.Socket) => (last = s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise((r) => setImmediate(r));
  };

  /**
   * Sends the head; when it is one the server refuses, waits for the server to answer (the
   * answer stays unread), then sends the body in pieces like a client writing a stream.
   */
  const exchange = async (headerBytes: number, bodyBytes: number) => {
    last = undefined;
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    s.pause();
    let error: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.write(
      `POST /x HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(headerBytes)}\r\n` +
        `Content-Type: text/plain\r\nContent-Length: ${bodyBytes}\r\n\r\n`,
    );
    let serverOpenAfterAnswer: boolean | undefined;
    if (headerBytes > 16_384) {
      await until(() => last !== undefined && (last.writableEnded || last.destroyed));
      serverOpenAfterAnswer = !last!.destroyed;
    }
    const piece = Math.ceil(bodyBytes / 16);
    for (let sent = 0; sent < bodyBytes && !s.destroyed; sent += piece) {
      s.write('b'.repeat(Math.min(piece, bodyBytes - sent)));
      await new Promise((r) => setImmediate(r));
    }
    if (!s.destroyed) s.end();
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    s.resume();
    await new Promise((r) => (s.closed ? r(undefined) : s.on('close', r)));
    return { answer, error, serverOpenAfterAnswer };
  };

  it('answers 431, then reads the body the client still sends and closes without a reset', async () => {
    const got = await exchange(20_000, 48_000);
    expect(got.serverOpenAfterAnswer).toBe(true);
    expect(got.error).toBeUndefined();
    expect(got.answer).toMatch(/^HTTP\/1\.1 431 /);
    expect(got.answer).toMatch(/connection: close/i);
  });

  it('serves a request with ordinary headers on the same server (control)', async () => {
    const before = handled;
    const got = await exchange(100, 48_000);
    expect(got.answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(handled).toBe(before + 1);
  });
});
