/**
 * The one place that builds the long-lived services and the worker's job handlers. The
 * server (main.ts), the CLI's worker (`replay --wait`) and the demo all come through here, so
 * every worker handles every job type the same way.
 */
import type { JobType } from '../db/stores/jobs.js';
import { LOCK } from '../db/locks.js';
import { createMailer, type Mailer } from './actions/index.js';
import { createAlertJobHandler, createAlertMonitor, type AlertMonitor } from './alerts/index.js';
import type { InstanceLock } from './cluster/instance-lock.js';
import type { Deps } from './deps.js';
import { lifecycleHandler } from './install/lifecycle.js';
import { createIntake, type Intake } from './intake/intake.js';
import type { BatchWriter } from './intake/writer.js';
import { createEventProcessor, type ProcessorOptions } from './processing/process-event.js';
import type { JobHandler } from './queue/types.js';
import { createWorker, type Worker, type WorkerOptions } from './queue/worker.js';
import { createRecovery, type Recovery } from './recovery/index.js';
import { createOfflineDrain, type OfflineDrain } from './recovery/offline.js';
import { createRetention, type Retention } from './retention/index.js';

/** What the job handlers share: the mailer of e-mail steps and alerts, the offline drain. */
export interface HandlerParts {
  readonly mailer: Mailer;
  readonly offline: OfflineDrain;
  readonly processor?: ProcessorOptions;
}

/**
 * The handler of each job type: `process_event` runs the rules (an ONOFFLINEEVENT notice
 * drains the portal's offline queue instead), `lifecycle` handles install and uninstall
 * notices, `alert` sends one alert on one channel.
 */
export function jobHandlers(deps: Deps, parts: HandlerParts): Record<JobType, JobHandler> {
  const { mailer, offline } = parts;
  return {
    process_event: offline.wrap(createEventProcessor(deps, { mailer, ...parts.processor })),
    lifecycle: lifecycleHandler,
    alert: createAlertJobHandler({ mailer }),
  };
}

export interface ProcessingOptions {
  /** This instance's presence lock on PostgreSQL (server/cluster/instance-lock.ts). */
  instanceLock?: InstanceLock;
  /** Worker options; `handlers` given here replace the built ones of the same type. */
  worker?: Partial<WorkerOptions>;
  processor?: ProcessorOptions;
}

/** The worker with every job handler, and what the handlers hold open. */
export interface Processing {
  readonly worker: Worker;
  readonly mailer: Mailer;
  /** Offline-event drain: on ONOFFLINEEVENT jobs, and on a timer once `offline.start()`. */
  readonly offline: OfflineDrain;
  /** Stops the drain's timer and the worker (waiting up to `timeoutMs`), closes the mailer. */
  close(timeoutMs?: number): Promise<void>;
}

/** Builds the worker and its handlers; nothing starts until `worker.start()` or `drain()`. */
export function createProcessing(deps: Deps, opts: ProcessingOptions = {}): Processing {
  const mailer = createMailer();
  const offline = createOfflineDrain(deps, { onStored: () => worker.notify() });
  const worker = createWorker(deps, {
    instanceLock: opts.instanceLock,
    ...opts.worker,
    handlers: {
      ...jobHandlers(deps, { mailer, offline, processor: opts.processor }),
      ...opts.worker?.handlers,
    },
  });
  return {
    worker,
    mailer,
    offline,
    async close(timeoutMs = 30_000) {
      await offline.stop();
      await worker.stop(timeoutMs);
      mailer.close();
    },
  };
}

/** Long-lived parts shared by routes and background work. */
export interface Services {
  readonly intake: Intake;
  readonly worker: Worker;
  readonly mailer: Mailer;
  /** Alert checks; `alerts.start()` runs them on a timer, `close()` stops them. */
  readonly alerts: AlertMonitor;
  /** Offline-event drain: on ONOFFLINEEVENT, and on a timer once `offline.start()`. */
  readonly offline: OfflineDrain;
  /** Heartbeat and downtime sweep: `recovery.start()` checks for a gap and beats. */
  readonly recovery: Recovery;
  /** Retention: `retention.start()` prunes old data in the background. */
  readonly retention: Retention;
  /** Stops background work and closes what the services opened. */
  close(timeoutMs?: number): Promise<void>;
}

export interface ServiceOptions {
  intakeWriter?: BatchWriter;
  /** The intake's flood mark (deliveries a second; server/intake/request-rate.ts). */
  floodMark?: number;
  /**
   * PostgreSQL with several instances: this instance's presence lock. The worker leases jobs
   * under it and frees those of dead instances; only the instance holding the alert lock
   * runs the alert checks.
   */
  instanceLock?: InstanceLock;
  worker?: Partial<WorkerOptions>;
  processor?: ProcessorOptions;
}

export function createServices(deps: Deps, opts: ServiceOptions = {}): Services {
  const intake = createIntake(deps, { writer: opts.intakeWriter, floodMark: opts.floodMark });
  const processing = createProcessing(deps, {
    instanceLock: opts.instanceLock,
    processor: opts.processor,
    worker: {
      // The intake comes first: no new claim while deliveries wait for their commit (SQLite
      // has one writer; a worker transaction would make them wait), at most 1 s in a row, so
      // processing never stops entirely. During a flood of more than 1,000 deliveries a
      // second only the processing of the portals sending it is held back (server/intake/
      // request-rate.ts).
      shouldYield: () => intake.busy(),
      flood: () => intake.flood(),
      ...opts.worker,
    },
  });
  const { worker, mailer, offline } = processing;
  intake.onStored((dueAt) => worker.notifyDue(dueAt));
  const lock = opts.instanceLock;
  const alerts = createAlertMonitor(deps, {
    onEnqueued: () => worker.notify('alert'),
    leader: lock ? () => lock.tryLead(LOCK.alerts, 0) : undefined,
  });
  const recovery = createRecovery(deps, {
    offline,
    onStored: () => worker.notify(),
    instanceKey: lock?.key,
  });
  const retention = createRetention(deps, {
    shouldYield: () => intake.busy(),
    leader: lock ? () => lock.tryLead(LOCK.retention, 0) : undefined,
  });
  return {
    intake,
    worker,
    mailer,
    alerts,
    offline,
    recovery,
    retention,
    async close(timeoutMs = 30_000) {
      await retention.stop();
      await recovery.stop();
      await alerts.stop();
      await offline.stop();
      await intake.close();
      await processing.close(timeoutMs);
    },
  };
}
