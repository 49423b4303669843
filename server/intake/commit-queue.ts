import type { IntakeOutcome, IntakeRow } from '../../db/stores/intake.js';
import type { BatchWriter } from './writer.js';

/**
 * Group commit: deliveries that arrive while a transaction is being written wait for the
 * next one, so many concurrent deliveries share one fsync. Each caller's promise resolves
 * only after its row is committed, and rejects if the transaction failed.
 */
export interface CommitQueue {
  submit(row: IntakeRow): Promise<IntakeOutcome>;
  /** Resolves when everything submitted so far is written (or failed). */
  drain(): Promise<void>;
  /** Whether deliveries are waiting for or in a commit right now. */
  busy(): boolean;
}

/**
 * PostgreSQL's data exceptions (class 22: a value too long for its column, a NUL character)
 * and integrity violations (class 23): the database refused one row's values, not the write.
 * Anyone can post a delivery, and rejected ones are logged too, so such a row must fail
 * alone, not the genuine deliveries batched with it (Bitrix24 never re-sends them), and it
 * says nothing about the storage's health.
 */
function refusedRow(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23]/.test(code);
}

interface Pending {
  row: IntakeRow;
  resolve(o: IntakeOutcome): void;
  reject(e: unknown): void;
}

export function createCommitQueue(
  writer: BatchWriter,
  now: () => number,
  opts: {
    maxBatch?: number;
    onCommitted?: (rows: IntakeRow[], outcomes: IntakeOutcome[]) => void;
    /** A batch could not be written (its callers' promises reject with `error`). */
    onFailed?: (error: unknown) => void;
  } = {},
): CommitQueue {
  const maxBatch = opts.maxBatch ?? 1000;
  // A writer that commits its batches in the order given, on its own (the writer thread),
  // is handed the next batch while one is being committed, so it never waits for this
  // thread between two commits. Others get one batch at a time: two transactions at once
  // could commit a later delivery's job before an earlier one's.
  const depth = writer.pipelined ? Infinity : 1;
  let pending: Pending[] = [];
  let scheduled = false;
  let inFlight = 0;
  let idle: Array<() => void> = [];

  function pump(): void {
    scheduled = false;
    while (pending.length > 0 && inFlight < depth) {
      const batch = pending.slice(0, maxBatch);
      pending = pending.slice(batch.length);
      inFlight++;
      void write(batch).finally(() => {
        inFlight--;
        if (pending.length > 0 && !scheduled) pump();
        else if (inFlight === 0 && pending.length === 0 && !scheduled) {
          const waiters = idle;
          idle = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  async function write(batch: Pending[]): Promise<void> {
    const rows = batch.map((p) => p.row);
    try {
      const outcomes = await writer.write(rows, now());
      batch.forEach((p, i) => p.resolve(outcomes[i]!));
      opts.onCommitted?.(rows, outcomes);
    } catch (e) {
      if (!refusedRow(e)) {
        for (const p of batch) p.reject(e);
        opts.onFailed?.(e);
      } else if (batch.length === 1) batch[0]!.reject(e);
      // Each row on its own, in order: only the refused one fails.
      else for (const p of batch) await write([p]);
    }
  }

  const busy = () => inFlight > 0 || pending.length > 0 || scheduled;
  return {
    submit(row) {
      return new Promise<IntakeOutcome>((resolve, reject) => {
        pending.push({ row, resolve, reject });
        // Let the requests that are already parsed in this turn of the event loop join.
        if (!scheduled && inFlight < depth) {
          scheduled = true;
          setImmediate(pump);
        }
      });
    },
    async drain() {
      while (busy()) await new Promise<void>((r) => idle.push(r));
    },
    busy,
  };
}
