import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { openDb } from '../../db/connect.js';
import { createConnectionGate, gateConnections } from '../../db/connection-gate.js';
import { createCommitQueue } from '../../server/intake/commit-queue.js';
import { threadWriter, type BatchWriter } from '../../server/intake/writer.js';
import { onPg } from '../helpers/pg.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { intakeRow, seedPortal, type TestPortal } from '../helpers/event-builder.js';

/**
 * The main thread's SQLite connection and the intake writer thread take turns (server
 * main.ts wires db/connection-gate.ts). The main connection here waits 0 ms for a lock, so
 * any overlap with a writer-thread transaction would surface as SQLITE_BUSY instead of as
 * the event-loop stall it causes in the server (better-sqlite3 sleeps on the calling
 * thread). The writer thread is the compiled one from dist/ (`npm test` builds first).
 */
const WRITER_FILE = new URL('../../dist/server/intake/writer-thread.js', import.meta.url);
const describeSqlite = onPg() ? describe.skip : describe;

describeSqlite('SQLite connection gate between the main thread and the intake writer', () => {
  let t: TestDeps;
  let portal: TestPortal;
  let main: Knex;
  let writer: BatchWriter | undefined;

  beforeEach(async () => {
    t = await createTestDeps();
    portal = await seedPortal(t.deps);
    main = openDb({ client: 'sqlite', filename: t.dbFile }, { busyTimeoutMs: 0 });
  });
  afterEach(async () => {
    await writer?.close();
    writer = undefined;
    await main.destroy();
    await t.close();
  });

  let seq = 0;
  const delivery = () => {
    const id = ++seq;
    return intakeRow(portal, id, {
      key: `gate-${id}`,
      body: `{"deal":${id},"pad":"${'x'.repeat(1000)}"}`,
      receivedAt: Date.now(),
    });
  };

  /** Writer batches and main-thread transactions at the same time; the busy errors seen. */
  async function contend(): Promise<{ busy: number; stored: number; mainWrites: number }> {
    let busy = 0;
    let mainWrites = 0;
    let flooding = true;
    const flood = (async () => {
      for (let b = 0; b < 60; b++) {
        await Promise.all([
          writer!.write(Array.from({ length: 40 }, delivery), Date.now()),
          writer!.write(Array.from({ length: 40 }, delivery), Date.now()),
        ]);
      }
      flooding = false;
    })();
    while (flooding) {
      try {
        await main.transaction(async (trx) => {
          const [job] = (await trx('jobs')
            .where('status', 'pending')
            .orderBy('id')
            .limit(1)) as Array<{ id: number }>;
          if (job) await trx('jobs').where('id', job.id).update({ status: 'done' });
        });
        mainWrites++;
      } catch (e) {
        if (!String((e as { code?: string }).code).startsWith('SQLITE_BUSY')) throw e;
        busy++;
      }
      await new Promise((r) => setImmediate(r));
    }
    await flood;
    const stored = Number((await main('events').count({ n: '*' }).first())?.n);
    return { busy, stored, mainWrites };
  }

  it('without the gate the two connections collide (what the gate prevents)', async () => {
    writer = threadWriter({ client: 'sqlite', filename: t.dbFile }, WRITER_FILE);
    const r = await contend();
    expect(r.stored).toBe(60 * 80);
    expect(r.busy).toBeGreaterThan(0);
  });

  it('with the gate neither side meets the other mid-transaction, and both make progress', async () => {
    writer = threadWriter(
      { client: 'sqlite', filename: t.dbFile },
      WRITER_FILE,
      gateConnections(main),
    );
    const r = await contend();
    expect(r.busy).toBe(0);
    expect(r.stored).toBe(60 * 80);
    expect(r.mainWrites).toBeGreaterThan(20);
  });

  it('hands batches over while one is committed, and commits them in the order given', async () => {
    writer = threadWriter(
      { client: 'sqlite', filename: t.dbFile },
      WRITER_FILE,
      gateConnections(main),
    );
    let committed = 0;
    let handedOver = 0;
    let overlapped = 0;
    const counting: BatchWriter = {
      ...writer,
      pipelined: writer.pipelined,
      write: async (rows, now) => {
        if (handedOver > committed) overlapped++;
        handedOver++;
        try {
          return await writer!.write(rows, now);
        } finally {
          committed++;
        }
      },
    };
    const queue = createCommitQueue(counting, () => Date.now());
    const rows = [];
    const outcomes = [];
    // Deliveries arriving over 30 turns of the event loop, as requests do under load.
    for (let turn = 0; turn < 30; turn++) {
      for (let i = 0; i < 5; i++) {
        const row = delivery();
        rows.push(row);
        outcomes.push(queue.submit(row));
      }
      await new Promise((r) => setImmediate(r));
    }
    const ids = (await Promise.all(outcomes)).map((o) => o.eventId!);
    // Control: batches really went over while another was being committed.
    expect(overlapped).toBeGreaterThan(0);
    // Each delivery got its own row, and the rows (and their jobs) are in arrival order.
    const stored = (await main('events')
      .whereIn('id', ids)
      .orderBy('id')
      .select('id', 'entity_id')) as Array<{ id: number; entity_id: string }>;
    expect(stored.map((r) => Number(r.id))).toEqual(ids);
    expect(stored.map((r) => r.entity_id)).toEqual(rows.map((r) => r.event.entity_id));
    const jobs = (await main('jobs').orderBy('id').pluck('event_id')) as number[];
    expect(jobs.map(Number)).toEqual(ids);
  });

  it('turns are first come, first served, and a turn is given back once', async () => {
    const gate = createConnectionGate();
    const order: string[] = [];
    const first = await gate.acquire();
    const second = gate.acquire().then((done) => {
      order.push('second');
      return done;
    });
    const third = gate.acquire().then((done) => {
      order.push('third');
      done();
    });
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    first();
    first(); // a second call must not release somebody else's turn
    const secondDone = await second;
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['second']);
    secondDone();
    await third;
    expect(order).toEqual(['second', 'third']);
  });

  it('lets the event loop turn between two queries of the main connection', async () => {
    gateConnections(main);
    // Counts turns of the event loop (one per setImmediate round) while a worker-like chain
    // of 100 small transactions runs, each answered synchronously by better-sqlite3.
    let turns = 0;
    let ticking = true;
    const tick = () => {
      if (!ticking) return;
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
    for (let i = 0; i < 100; i++) {
      await main.transaction(async (trx) => {
        await trx('jobs').where('id', -i).update({ status: 'done' });
      });
    }
    ticking = false;
    // Without the turn the whole chain ran as promise callbacks: requests waited for all of it.
    expect(turns).toBeGreaterThanOrEqual(100);
  });
});
