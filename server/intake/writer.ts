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
 * thread the next batch is parsed and verified while this one is written. With `gate` (the
 * main knex's, db/connection-gate.ts) each batch waits for the main thread's connection to
 * be idle, so neither side ever sleeps in SQLite's busy handler waiting for the other.
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
  const failAll = (e: Error) => {
    failed = e;
    for (const w of waiting.values()) w.reject(e);
    waiting.clear();
  };
  worker.on('message', (m: WriterReply) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    const { eventIds, duplicates } = m;
    if (eventIds && duplicates) {
      w.resolve(eventIds.map((eventId, i) => ({ eventId, duplicate: duplicates[i] === 1 })));
    } else w.reject(new Error(m.error ?? 'intake writer failed'));
  });
  worker.on('error', (e) => failAll(e));
  worker.on('exit', (code) => failAll(new Error(`intake writer thread exited (${code})`)));
  return {
    async write(rows, now) {
      if (failed) throw failed;
      const packed = packIntakeRows(rows);
      // The main thread's connection is idle from here until the batch is committed.
      const done = await gate?.acquire();
      const id = ++seq;
      return (
        new Promise((resolve, reject) => {
          if (failed) return reject(failed);
          waiting.set(id, { resolve, reject });
          worker.ref();
          worker.postMessage({ id, rows: packed, now });
        }) as Promise<IntakeOutcome[]>
      ).finally(() => {
        done?.();
        if (waiting.size === 0) worker.unref();
      });
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}
