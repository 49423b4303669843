import { Worker } from 'node:worker_threads';
import type { Knex } from 'knex';
import type { DbTarget } from '../../db/connect.js';
import type { ConnectionGate } from '../../db/connection-gate.js';
import {
  packIntakeRows,
  writeIntakeBatch,
  type IntakeOutcome,
  type IntakeRow,
} from '../../db/stores/intake.js';

/** Writes one group-commit batch; resolves once it is committed. */
export interface BatchWriter {
  write(rows: IntakeRow[], now: number): Promise<IntakeOutcome[]>;
  close(): Promise<void>;
  /**
   * Batches handed over while others are being written are committed after them, in the
   * order given: the commit queue may hand over the next batch without waiting.
   */
  readonly pipelined?: boolean;
}

/** PostgreSQL's deadlock_detected and serialization_failure: the transaction may simply run again. */
const RETRYABLE_PG_CODES = new Set(['40P01', '40001']);

/**
 * Writes on the caller's own knex: PostgreSQL (the pool's connections, one transaction per
 * batch), and SQLite in tests under ts-jest. On PostgreSQL, batches of two instances that
 * hold the same deliveries in a different order (Bitrix24 sent one twice, to both) can
 * deadlock on the dedupe key's index; PostgreSQL then aborts one, and it is written again.
 */
export function inlineWriter(db: Knex, attempts = 3): BatchWriter {
  return {
    async write(rows, now) {
      for (let i = 1; ; i++) {
        try {
          return await writeIntakeBatch(db, rows, now);
        } catch (e) {
          const code = (e as { code?: unknown }).code;
          if (i >= attempts || typeof code !== 'string' || !RETRYABLE_PG_CODES.has(code)) throw e;
        }
      }
    },
    close: async () => undefined,
  };
}

/**
 * The thread's answer. Outcomes travel as two flat arrays (event id or null, duplicate flag
 * as 0/1), which clone far faster than one object per delivery.
 */
export type WriterReply = {
  id: number;
  eventIds?: Array<number | null>;
  duplicates?: number[];
  error?: string;
};

/**
 * Writes on a dedicated thread with its own SQLite connection. better-sqlite3 is synchronous,
 * so on the main thread every insert and fsync would stall request handling; on its own
 * thread the next batch is parsed and verified while this one is written. Batches are
 * handed over as they come (`pipelined`); the thread writes all that arrived during a commit
 * in the next one (writer-thread.ts), so it goes from one commit to the next without waiting
 * for this thread. With `gate` (the main knex's, db/connection-gate.ts) batches go over only
 * during a turn: one is taken when the thread is idle and kept while batches are out and
 * nobody else asks; once the main thread's connection asks, the batches out are committed,
 * the turn goes to it, and the batches that came meanwhile wait for the next turn. So neither
 * side ever sleeps in SQLite's busy handler waiting for the other.
 */
export function threadWriter(
  target: DbTarget,
  workerFile: URL,
  gate?: ConnectionGate,
): BatchWriter {
  const worker = new Worker(workerFile, { workerData: { target } });
  worker.unref();
  const waiting = new Map<number, { resolve(o: IntakeOutcome[]): void; reject(e: Error): void }>();
  let seq = 0;
  let failed: Error | undefined;
  const turns = gate ? turnKeeper(gate) : undefined;
  const settled = () => {
    if (waiting.size > 0) return;
    worker.unref();
    turns?.idle();
  };
  const failAll = (e: Error) => {
    failed = e;
    for (const w of waiting.values()) w.reject(e);
    waiting.clear();
    settled();
  };
  worker.on('message', (m: WriterReply) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    const { eventIds, duplicates } = m;
    if (eventIds && duplicates) {
      w.resolve(eventIds.map((eventId, i) => ({ eventId, duplicate: duplicates[i] === 1 })));
    } else w.reject(new Error(m.error ?? 'intake writer failed'));
    settled();
  });
  worker.on('error', (e) => failAll(e));
  worker.on('exit', (code) => failAll(new Error(`intake writer thread exited (${code})`)));
  return {
    pipelined: true,
    async write(rows, now) {
      if (failed) throw failed;
      const packed = packIntakeRows(rows);
      // The main thread's connection is idle from here until the batch is committed.
      await turns?.take();
      if (failed) {
        settled();
        throw failed;
      }
      const id = ++seq;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        worker.ref();
        worker.postMessage({ id, rows: packed, now });
      });
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

/**
 * The writer's turns at the gate: `take` resolves when batches may go over (a turn held and
 * nobody else waiting, or a turn just granted), `idle` ends the turn once none is out.
 */
function turnKeeper(gate: ConnectionGate) {
  let turn: { done: () => void; ended: Promise<void>; end: () => void } | undefined;
  let asking: Promise<void> | undefined;
  return {
    async take(): Promise<void> {
      // Someone else asked: the batches out are committed first, then the turn goes.
      while (turn && gate.waiting() > 0) await turn.ended;
      if (turn) return;
      asking ??= gate.acquire().then((done) => {
        let end = () => {};
        const ended = new Promise<void>((r) => (end = r));
        turn = { done, ended, end };
        asking = undefined;
      });
      await asking;
    },
    idle(): void {
      const t = turn;
      if (!t) return;
      turn = undefined;
      t.done();
      t.end();
    },
  };
}
