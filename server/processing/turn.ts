import { YieldError } from '../lib/retry-errors.js';
import type { JobRow } from '../queue/types.js';
import type { Entity } from './entity-reader.js';

/**
 * One `process_event` job's turn in its worker slot. Between two steps the worker may want
 * the slot back for another portal (server/queue/slot-turn.ts): the job then stops there
 * and runs again at once, skipping the steps it finished (each is recorded as it ends).
 */
export interface Turn {
  /** A step was sent (or tried) in this turn. */
  stepRan(): void;
  /**
   * Between two steps: throws YieldError when the worker wants the slot back, once this
   * turn has run a step (so every turn moves on, however slow its read was). The record
   * read for the job is kept for its next turn.
   */
  checkpoint(): Promise<void>;
}

/** A job's record, kept while the job waits for its next turn. */
interface Kept {
  readonly eventId: number;
  readonly entity: Entity | undefined;
  /** When it was kept (real time). */
  readonly at: number;
}

/**
 * Records of jobs that gave their slot back, by job id, for their next turn on this
 * processor: the steps after the pause see the record the steps before it saw, and the
 * resume costs no read of the portal's REST budget (2 requests a second). A job resumed by
 * another instance (PostgreSQL), or after `ttlMs`, reads its record afresh, as a retry does.
 */
export interface KeptRecords {
  keep(jobId: number, eventId: number, entity: Entity | undefined): void;
  /** The record kept for this job's event (and forgets it); undefined when none is. */
  take(jobId: number, eventId: number): { entity: Entity | undefined } | undefined;
}

export function createKeptRecords(maxEntries = 1000, ttlMs = 60_000): KeptRecords {
  const kept = new Map<number, Kept>();
  return {
    keep(jobId, eventId, entity) {
      kept.delete(jobId);
      if (kept.size >= maxEntries) kept.delete(kept.keys().next().value as number);
      kept.set(jobId, { eventId, entity, at: Date.now() });
    },
    take(jobId, eventId) {
      const k = kept.get(jobId);
      if (!k) return undefined;
      kept.delete(jobId);
      if (k.eventId !== eventId || Date.now() - k.at >= ttlMs) return undefined;
      return { entity: k.entity };
    },
  };
}

export function createTurn(
  kept: KeptRecords,
  job: Pick<JobRow, 'id'>,
  eventId: number,
  entity: Entity | undefined,
  slotWanted: (() => Promise<boolean>) | undefined,
): Turn {
  let ran = 0;
  return {
    stepRan() {
      ran++;
    },
    async checkpoint() {
      if (ran === 0 || !slotWanted || !(await slotWanted())) return;
      kept.keep(job.id, eventId, entity);
      throw new YieldError();
    },
  };
}
