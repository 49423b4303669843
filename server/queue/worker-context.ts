import type { EventEmitter } from 'node:events';
import os from 'node:os';
import PQueue from 'p-queue';
import type { Deps } from '../deps.js';
import type { InstanceLock } from '../cluster/instance-lock.js';
import type { JobType } from '../../db/stores/jobs.js';
import { createLanes, type Lanes } from './lanes.js';
import type { JobHandler, JobRow } from './types.js';

export interface WorkerOptions {
  handlers: Partial<Record<JobType, JobHandler>>;
  /** Slots for event work (every job type but `alert`). Default WORKER_CONCURRENCY. */
  concurrency?: number;
  /** Default WORKER_PORTAL_SHARE. */
  portalShare?: number;
  /** Slots of the alert lane, on top of `concurrency`. @default 2 */
  alertConcurrency?: number;
  /** A job `running` longer than this is presumed abandoned by a dead process. Default 10 min. */
  leaseMs?: number;
  /** How often to look for due work when nothing wakes the worker. Default 1 s. */
  pollMs?: number;
  workerId?: string;
  random?: () => number;
  /**
   * Intake first: while this says the intake is under a flood, the loop waits before
   * claiming (at most `maxYieldMs` in a row, then it claims one job), so acknowledging
   * deliveries — which Bitrix24 never re-sends — is never starved by processing, which
   * still moves and catches up once the flood is over.
   */
  shouldYield?: () => boolean;
  /**
   * Who sends the flood (the intake's `flood()`): only the jobs of `portals` are held back,
   * to one each per `maxYieldMs`, while the other portals' run as usual.
   */
  flood?: () => { portals: ReadonlySet<number> };
  /** @default 1000 */
  maxYieldMs?: number;
  /**
   * PostgreSQL with several instances: this instance's presence lock. Leases then carry its
   * key, and the loop returns the jobs of instances that died to the queue (every
   * `orphanSweepMs`, real time) instead of leaving them to a lease timeout.
   */
  instanceLock?: InstanceLock;
  /** @default 5000 */
  orphanSweepMs?: number;
  /**
   * Real time a job holds its slot before it gives it back between two steps while another
   * portal's job is due (server/queue/slot-turn.ts). @default 1000
   */
  slotTurnMs?: number;
}

export interface JobOutcome {
  job: JobRow;
  /** `yielded`: it gave its slot back between two steps and runs again at once. */
  outcome: 'done' | 'retry' | 'dead' | 'paused' | 'yielded';
  error?: string;
}

/** What changes while the worker runs. */
export interface WorkerState {
  running: boolean;
  loopDone: Promise<void> | undefined;
  /** Ends the loop's sleep early; set while it sleeps. */
  wake: (() => void) | undefined;
  loopTimer: NodeJS.Timeout | undefined;
  /** Set by `kick` (a slot freed, work stored) so a wake-up during a claim is not lost. */
  kicked: boolean;
  /** When the loop's sleep ends (app clock), while it sleeps. */
  sleepUntil: number | undefined;
  /** Work stored while the loop was not asleep becomes due then: its next sleep ends by it. */
  dueHint: number | undefined;
  /** The alert lane is looked at when alerts were stored, or once per pollMs (retries). */
  alertsDue: boolean;
  alertsLookedAt: number;
  /**
   * Jobs claimed (so `running` in the table) whose outcome could not be written: the
   * database refused (locked, disk full). They go back to the queue as soon as it takes
   * writes again, without waiting for a lease to expire or a restart.
   */
  readonly unrecorded: Set<number>;
  /** Claims that failed in a row: the loop backs off while the database refuses. */
  failedClaims: number;
  /** When the loop last looked for jobs of dead instances (real time). */
  lastSweep: number;
  /** Jobs that are giving their slot back (slot-turn.ts), until the slot is released. */
  readonly yielding: Set<number>;
  /** When the portals sending a flood last had their turn of one job each (real time). */
  floodTurnAt: number;
  /** When each portal was last logged as sending a flood (real time). */
  readonly floodLogged: Map<number, number>;
}

/**
 * The worker's options compiled once, its slots and its state, passed explicitly to the
 * module functions that claim (claim-and-run.ts), run (execute-job.ts) and loop
 * (worker-loop.ts), in graphile-worker's style.
 */
export interface WorkerContext {
  readonly deps: Deps;
  readonly handlers: WorkerOptions['handlers'];
  readonly id: string;
  /** The lease holder written to `locked_by`: the id, then `#<instance key>` with a lock. */
  readonly claimId: string;
  readonly lock: InstanceLock | undefined;
  readonly lanes: Lanes;
  /** Bounds how many jobs run at once; the jobs table stays the truth. */
  readonly queue: PQueue;
  /** The worker itself: `job`, `job:<outcome>` are emitted on it. */
  readonly emitter: EventEmitter;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly orphanSweepMs: number;
  readonly maxYieldMs: number;
  readonly slotTurnMs: number;
  readonly shouldYield: (() => boolean) | undefined;
  readonly flood: WorkerOptions['flood'];
  readonly random: (() => number) | undefined;
  readonly state: WorkerState;
  /** The clock's time in ms. */
  now(): number;
}

export function createWorkerContext(
  deps: Deps,
  opts: WorkerOptions,
  emitter: EventEmitter,
): WorkerContext {
  const { config } = deps;
  // locked_by is 64 characters at most; `#<instance key>` may follow (claimId).
  const id =
    opts.workerId ??
    `${os.hostname().slice(0, 32)}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  const lock = opts.instanceLock;
  const concurrency = opts.concurrency ?? config.worker.concurrency;
  const alertConcurrency = opts.alertConcurrency ?? 2;
  return {
    deps,
    handlers: opts.handlers,
    id,
    claimId: lock ? `${id}#${lock.key}` : id,
    lock,
    lanes: createLanes({
      concurrency,
      portalShare: opts.portalShare ?? config.worker.portalShare,
      alertConcurrency,
    }),
    queue: new PQueue({ concurrency: concurrency + alertConcurrency }),
    emitter,
    leaseMs: opts.leaseMs ?? 10 * 60_000,
    pollMs: opts.pollMs ?? 1000,
    orphanSweepMs: opts.orphanSweepMs ?? 5000,
    maxYieldMs: opts.maxYieldMs ?? 1000,
    slotTurnMs: opts.slotTurnMs ?? 1000,
    shouldYield: opts.shouldYield,
    flood: opts.flood,
    random: opts.random,
    state: {
      running: false,
      loopDone: undefined,
      wake: undefined,
      loopTimer: undefined,
      kicked: false,
      sleepUntil: undefined,
      dueHint: undefined,
      alertsDue: true,
      alertsLookedAt: 0,
      unrecorded: new Set<number>(),
      failedClaims: 0,
      lastSweep: 0,
      yielding: new Set<number>(),
      floodTurnAt: -Infinity,
      floodLogged: new Map<number, number>(),
    },
    now: () => deps.clock.now().getTime(),
  };
}

/** Wake the loop: a slot freed or work was stored. */
export function kick(w: WorkerContext): void {
  w.state.kicked = true;
  w.state.wake?.();
}
