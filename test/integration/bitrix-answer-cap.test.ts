import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ANSWER_CAP_BYTES, requestJson } from '../../server/bitrix/transport.js';
import { BitrixPermanentError } from '../../server/bitrix/errors.js';

/**
 * A portal's REST endpoint or an OAuth server answers on a real socket: one that answers
 * without end (a name under a zone no one checks) must not be read into memory whole.
 */
describe('answers read from Bitrix24', () => {
  let server: http.Server;
  let url: string;
  let streamed = 0;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      const mb = Buffer.alloc(1024 * 1024, 0x20);
      if (req.url === '/declared') {
        res.writeHead(200, { 'content-length': String(ANSWER_CAP_BYTES + 1) });
        res.end();
        return;
      }
      if (req.url === '/small') {
        res.end(JSON.stringify({ result: 'x'.repeat(1024 * 1024) }));
        return;
      }
      // Chunked, without a length, for as long as the client reads.
      res.writeHead(200, { 'content-type': 'application/json' });
      const more = () => {
        while (res.write(mb)) {
          streamed += mb.length;
          if (streamed > 4 * ANSWER_CAP_BYTES) return void res.end();
        }
      };
      res.on('drain', more);
      res.on('close', () => res.off('drain', more));
      more();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const ask = (path: string) =>
    requestJson(
      fetch,
      `${url}${path}`,
      { contentType: 'application/json', body: '{}', timeoutMs: 20_000 },
      () => ({
        bitrixCode: 'NETWORK_ERROR',
        httpStatus: 0,
        method: 'profile',
        description: '',
      }),
    );

  it('refuses an answer past the cap, declared or streamed, without reading the rest', async () => {
    for (const path of ['/declared', '/endless']) {
      const err = await ask(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BitrixPermanentError);
      expect((err as BitrixPermanentError).bitrixCode).toBe('ANSWER_TOO_LARGE');
    }
    // The endless answer stopped soon after the cap (the socket's buffers), not at its end.
    expect(streamed).toBeLessThan(2 * ANSWER_CAP_BYTES);
    // Control: an answer under the cap is read and parsed.
    const ok = await ask('/small');
    expect((ok.json?.result as string).length).toBe(1024 * 1024);
  });
});
