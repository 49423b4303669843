import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import { generateEvents } from '../../helpers/bulk-events.js';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { EXPORTS_PER_PORTAL, writeOrWait } from '../../../server/ui/pages/log-export.js';
import { base, getPage, openSession, type UiSession } from './ui-client.js';

/**
 * The log's CSV export is written as its reader takes it. It was written as fast as the
 * database gave it, whether or not anyone read: a user of any portal who opened a few exports
 * and stopped reading had the server hold every row in memory (ten readers of 100,000 rows:
 * 675 MB, a security review's measurement).
 */
describe('the CSV export of the log', () => {
  let h: UiHarness;
  let reader: UiSession;
  const ROWS = 60_000; // about 24 MB of CSV: more than the sockets' buffers hold
  let pagesRead = 0;
  beforeAll(async () => {
    h = await startUiHarness();
    reader = await openSession(h, { userId: 2 });
    const db = h.t.deps.db;
    const portal = await db('portals').where({ member_id: h.portal.memberId }).first('id');
    await generateEvents(db, [
      {
        portalId: portal.id as number,
        memberId: h.portal.memberId,
        status: 'failed',
        receivedAt: h.t.clock.now().getTime() - 3600_000,
        count: ROWS,
      },
    ]);
    await db('events')
      .where({ portal_id: portal.id as number })
      .update({ last_error: `HTTP 500 from accounting: ${'x'.repeat(300)}` });
    db.on('query', (q: { sql: string }) => {
      if (/select .*last_error.* from .events./i.test(q.sql)) pagesRead++;
    });
  }, 120_000);
  afterAll(async () => {
    await h.close();
  });

  /** A GET of the export on a socket of its own that reads nothing until told to. */
  function openExport(path = '/ui/events.csv') {
    const url = new URL(base(h));
    const socket = net.connect(Number(url.port), url.hostname);
    socket.pause();
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nCookie: ${reader.cookie}\r\nConnection: close\r\n\r\n`,
    );
    const chunks: Buffer[] = [];
    const ended = new Promise<string>((resolve) =>
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8'))),
    );
    socket.on('data', (c: Buffer) => chunks.push(c));
    return { socket, read: () => (socket.resume(), ended) };
  }

  /** Until the count of pages read stops growing for a while. */
  async function settled(): Promise<number> {
    let last = -1;
    while (last !== pagesRead) {
      last = pagesRead;
      await new Promise((r) => setTimeout(r, 400));
    }
    return last;
  }

  it('reads the log no faster than its reader takes it, and loses nothing', async () => {
    const before = pagesRead;
    const slow = openExport();
    const read = (await settled()) - before;
    // Control: it started; and it stopped well before the 120 pages of the whole log.
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(ROWS / 500 / 2);
    const text = await slow.read();
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
    const lines = text.split('\r\n').filter((l) => /^\d+,/.test(l));
    expect(lines).toHaveLength(ROWS);
    expect(pagesRead - before).toBeGreaterThanOrEqual(ROWS / 500);
  }, 60_000);

  it('lets go a reader that takes nothing for too long', async () => {
    // A server of its own writing through the export's writer, with a short stall limit.
    const express = (await import('express')).default;
    const app = express();
    let result: boolean | undefined;
    app.get('/big', (_req, res) => {
      void (async () => {
        let ok = true;
        for (let i = 0; i < 2000 && ok; i++)
          ok = await writeOrWait(res, 'x'.repeat(64 * 1024), 300);
        result = ok;
        if (ok) res.end();
      })();
    });
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as net.AddressInfo;
      const socket = net.connect(port, '127.0.0.1');
      socket.pause();
      socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n');
      const closed = new Promise<void>((r) => socket.on('close', () => r()));
      socket.on('error', () => undefined);
      for (let i = 0; i < 100 && result === undefined; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      // Control: it stopped because nobody read, not because it finished (128 MB asked).
      expect(result).toBe(false);
      socket.resume();
      await closed; // the server closed the connection
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it(`runs ${EXPORTS_PER_PORTAL} exports of a portal at once, and ends one whose reader left`, async () => {
    const open = Array.from({ length: EXPORTS_PER_PORTAL }, () => openExport());
    await settled();
    const refused = await getPage(h, '/ui/events.csv', reader.cookie);
    expect(refused.status).toBe(429);
    expect(refused.html).toContain('exports of this portal');
    // The reader of one leaves: its export ends, and another may start.
    open[0]!.socket.destroy();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await getPage(h, '/ui/events.csv?event=ONCRMDEALADD', reader.cookie)).status;
    }
    expect(status).toBe(200);
    for (const o of open) o.socket.destroy();
  }, 60_000);
});
