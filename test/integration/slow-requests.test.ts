import net from 'node:net';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterEach, describe, expect, it } from '@jest/globals';
import { createHttpServer } from '../../server/http-server.js';
import { appParts } from '../../server/routes/index.js';
import { createServices } from '../../server/services.js';
import { buildListener } from '../../server/start.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * Anyone may open a connection and send a request as slowly as it likes. What it may hold:
 * a request must arrive whole within the server's request timeout, and the app's pages read
 * no body before the sender is known to have a session.
 */
describe('slow and unauthenticated request bodies', () => {
  let server: ReturnType<typeof createHttpServer> | undefined;
  let t: TestDeps | undefined;
  afterEach(async () => {
    if (server) await new Promise((r) => server!.close(r));
    server?.closeAllConnections();
    await t?.close();
    server = undefined;
    t = undefined;
  });

  const listen = async (s: ReturnType<typeof createHttpServer>) => {
    server = s;
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return (s.address() as AddressInfo).port;
  };

  /** Sends a request head announcing `length` body bytes and `sent` of them; the first answer. */
  const partial = (port: number, path: string, length: number, sent: number) =>
    new Promise<{ answer: string; closed: boolean }>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      let answer = '';
      s.on('data', (d) => (answer += d.toString()));
      s.on('error', () => undefined);
      s.on('close', () => resolve({ answer, closed: true }));
      s.write(
        `POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
          `Content-Length: ${length}\r\n\r\n${'a'.repeat(sent)}`,
      );
      // Never sends the rest: the server must answer, or cut, on its own.
      const poll = setInterval(() => {
        if (answer.includes('\r\n\r\n')) {
          clearInterval(poll);
          s.destroy();
          resolve({ answer, closed: false });
        }
      }, 20);
    });

  it('cuts a request whose body does not arrive within the request timeout (408)', async () => {
    const port = await listen(
      createHttpServer(
        (req, res) => {
          req.resume();
          req.on('end', () => res.end('ok'));
        },
        { requestTimeoutMs: 300, checkIntervalMs: 100 },
      ),
    );
    const { answer } = await partial(port, '/anything', 100_000, 10);
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
  });

  it('refuses a page POST without a session on its head, before reading its body', async () => {
    t = await createTestDeps();
    const services = createServices(t.deps);
    const port = await listen(createHttpServer(buildListener(t.deps, appParts(t.deps, services))));
    // 1 MB announced, 10 bytes sent: the answer comes without the rest.
    const { answer } = await partial(port, '/ui/rules', 1_000_000, 10);
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 401 Unauthorized');
  });

  it("reads the open routes' form bodies up to their limits (413 past them)", async () => {
    t = await createTestDeps();
    const listener = buildListener(t.deps, appParts(t.deps, createServices(t.deps)));
    const { install, app } = t.deps.manifest.handlers;
    const post = (path: string, body: string, type = 'application/x-www-form-urlencoded') =>
      request(listener).post(path).set('Content-Type', type).send(body);
    expect((await post(install, 'x'.repeat(t.deps.config.bodyLimit + 1))).status).toBe(413);
    expect((await post(app, 'x'.repeat(64 * 1024 + 1))).status).toBe(413);
    // Within the limit the form is read (a charset parameter is fine): refused on its content.
    const read = await post(
      app,
      'DOMAIN=x&AUTH_ID=',
      'application/x-www-form-urlencoded; charset=UTF-8',
    );
    expect(read.status).toBe(400);
  });
});
