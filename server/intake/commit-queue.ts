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
  let pending: Pending[] = [];
  let running: Promise<void> | undefined;

  async function loop(): Promise<void> {
    while (pending.length > 0) {
      const batch = pending.slice(0, maxBatch);
      pending = pending.slice(batch.length);
      try {
        const outcomes = await writer.write(
          batch.map((p) => p.row),
          now(),
        );
        batch.forEach((p, i) => p.resolve(outcomes[i]!));
        opts.onCommitted?.(
          batch.map((p) => p.row),
          outcomes,
        );
      } catch (e) {
        for (const p of batch) p.reject(e);
        opts.onFailed?.(e);
      }
    }
    running = undefined;
  }

  return {
    submit(row) {
      return new Promise<IntakeOutcome>((resolve, reject) => {
        pending.push({ row, resolve, reject });
        // Let the requests that are already parsed in this turn of the event loop join.
        running ??= new Promise<void>((r) => setImmediate(r)).then(loop);
      });
    },
    async drain() {
      while (running) await running;
    },
    busy() {
      return running !== undefined || pending.length > 0;
    },
  };
}
