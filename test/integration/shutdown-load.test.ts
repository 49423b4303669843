import { describe, expect, it } from '@jest/globals';
import { openDb } from '../../db/connect.js';
import { eventBody } from '../helpers/event-builder.js';
import { seedDataDir } from '../helpers/seed-db.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('SIGTERM while deliveries keep arriving', () => {
  it('exits 0 soon, and every delivery answered 200 is stored', async () => {
    const { dir, cleanup } = tempDir('b24hooks-shutdown-load-');
    const seed = await seedDataDir(dir);
    const server = await spawnServer({ ...seed.env, LOG_LEVEL: 'warn' });
    // fetch keeps its connections alive, as a proxy's upstream pool or Bitrix24's senders do.
    const answered: number[] = [];
    const cut: string[] = [];
    let next = 0;
    let sending = true;
    const sender = async () => {
      while (sending) {
        const id = ++next;
        try {
          const r = await fetch(`${server.url}/b24/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: eventBody({ portal: seed.portal, id, event: 'ONCRMDEALADD' }),
          });
          await r.text();
          if (r.status === 200) answered.push(id);
        } catch (e) {
          // Refused: the listener is closed, and the client knows nothing was sent. Anything
          // else (a reset) cut a delivery that was sent: neither answered nor stored.
          const code = (e as { cause?: { code?: string } }).cause?.code;
          if (code !== 'ECONNREFUSED') cut.push(`${id} ${code ?? (e as Error).message}`);
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const senders = Array.from({ length: 8 }, sender);
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    const code = await server.stop('SIGTERM');
    const took = Date.now() - t0;
    sending = false;
    await Promise.all(senders);
    const db = openDb(seed.target);
    const rows = await db('events').select('entity_id', 'status');
    await db.destroy();
    await seed.drop();
    cleanup();

    // It used to keep answering on the open connections until its 30 s timer exited with 1.
    expect(code).toBe(0);
    expect(took).toBeLessThan(15_000);
    const stored = new Set(rows.map((r) => Number(r.entity_id)));
    expect(answered.length).toBeGreaterThan(0);
    expect(answered.filter((id) => !stored.has(id))).toEqual([]);
    // Idle keep-alive connections were closed at once, resetting requests just sent on them
    // (11-19 of a run, an operator measured): now they are answered for a moment first.
    expect(cut).toEqual([]);
    // Jobs in flight were finished or handed back, none left claimed by the dead process.
    expect(rows.filter((r) => r.status === 'processing')).toEqual([]);
  }, 60_000);
});
