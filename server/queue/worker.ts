import { EventEmitter } from 'node:events';
import type { Deps } from '../deps.js';
import { releaseJobs, releaseStaleJobs } from '../../db/stores/jobs.js';
import { claimAndRun } from './claim-and-run.js';
import {
  createWorkerContext,
  kick,
  type JobOutcome,
  type WorkerContext,
  type WorkerOptions,
} from './worker-context.js';
import { runLoop, wakeBy } from './worker-loop.js';

export type { JobOutcome, WorkerOptions } from './worker-context.js';

export interface Worker extends EventEmitter {
  readonly id: string;
  /** Claims whatever is due now, runs it, and resolves when all of it finished. */
  runOnce(): Promise<JobOutcome[]>;
  /**
   * Runs `runOnce` until nothing is due and nothing the loop (`start`) claimed is still
   * running; resolves with the outcomes of the jobs it ran itself.
   */
  drain(maxRounds?: number): Promise<JobOutcome[]>;
  start(): void;
  /** Stops claiming, waits for work in flight up to `timeoutMs`, then releases what is left. */
  stop(timeoutMs?: number): Promise<void>;
  /**
   * Wake the loop (new work was stored); `'alert'` when alert jobs were stored (the alert
   * lane is otherwise looked at once per `pollMs`, not on every delivery).
   */
  notify(kind?: 'alert'): void;
  /**
   * Work was stored that is first due at `at` (app clock): wake the loop then, or at once
   * when that is now. A delivery's job is due a settling time after its receipt
   * (`EVENT_SETTLE_MS`), so a round at its commit would find nothing to claim.
   */
  notifyDue(at: number): void;
  /** Returns running jobs abandoned by a dead process to the queue. */
  recoverStale(): Promise<number>;
}

/**
 * The worker: the jobs table is the truth; p-queue only bounds how many run at once. Each
 * claimed job carries a lease (who, when). One claim-and-run (claim-and-run.ts) serves both
 * `runOnce` and the loop (worker-loop.ts); execute-job.ts runs a job and records its outcome.
 */
export function createWorker(deps: Deps, opts: WorkerOptions): Worker {
  const emitter = new EventEmitter() as Worker;
  const w = createWorkerContext(deps, opts, emitter);
  const runOnce = async () => (await claimAndRun(w))?.outcomes ?? [];
  return Object.assign(emitter, {
    id: w.id,
    runOnce,
    async drain(maxRounds = 10_000) {
      const all: JobOutcome[] = [];
      for (let i = 0; i < maxRounds; i++) {
        const done = await runOnce();
        if (done.length > 0) {
          all.push(...done);
          continue;
        }
        // Nothing this call could claim; the loop may hold jobs that are due meanwhile.
        if (w.queue.size === 0 && w.queue.pending === 0) break;
        await w.queue.onIdle();
      }
      return all;
    },
    start() {
      if (w.state.running) return;
      w.state.running = true;
      w.state.loopDone = runLoop(w);
    },
    stop: (timeoutMs?: number) => stopWorker(w, timeoutMs),
    notify(kind?: 'alert') {
      if (kind === 'alert') w.state.alertsDue = true;
      kick(w);
    },
    notifyDue(at: number) {
      if (at <= w.now()) kick(w);
      else wakeBy(w, at);
    },
    async recoverStale() {
      const n = await releaseStaleJobs(deps.db, w.now() - w.leaseMs, w.now());
      if (n) deps.logger.warn({ jobs: n }, 'returned abandoned jobs to the queue');
      return n;
    },
  });
}

/** Stops claiming, waits for work in flight up to `timeoutMs`, then releases what is left. */
async function stopWorker(w: WorkerContext, timeoutMs = 30_000): Promise<void> {
  w.state.running = false;
  w.state.wake?.();
  await w.state.loopDone;
  const idle = w.queue.onIdle();
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
  if ((await Promise.race([idle.then(() => 'idle' as const), timer])) === 'timeout') {
    const left = w.lanes.ids();
    const n = await releaseJobs(w.deps.db, w.claimId, left, w.now());
    w.deps.logger.warn({ released: n }, 'shutdown: released jobs still running after the timeout');
  }
}
