import type { Deps } from '../deps.js';
import { createMailer, type Mailer } from '../actions/index.js';
import { createAlertJobHandler, createAlertMonitor, type AlertMonitor } from '../alerts/index.js';
import { createIntake, type Intake } from '../intake/intake.js';
import type { BatchWriter } from '../intake/writer.js';
import type { InstanceLock } from '../cluster/instance-lock.js';
import { LOCK } from '../../db/locks.js';
import { installRoutes } from './install.js';
import { lifecycleHandler } from '../install/lifecycle.js';
import { createEventProcessor, type ProcessorOptions } from '../processing/process-event.js';
import { createWorker, type Worker, type WorkerOptions } from '../queue/worker.js';
import { createOfflineDrain, type OfflineDrain } from '../recovery/offline.js';
import { createRecovery, type Recovery } from '../recovery/index.js';
import { createRetention, type Retention } from '../retention/index.js';
import { uiRoutes } from '../ui/routes.js';
import type { Parts } from '../http-server.js';

/** Long-lived parts shared by routes and background work. */
export interface Services {
  readonly intake: Intake;
  readonly worker: Worker;
  readonly mailer: Mailer;
  /** Alert checks (issue 7); `alerts.start()` runs them on a timer, `close()` stops them. */
  readonly alerts: AlertMonitor;
  /** Offline-event drain (issue 8): on ONOFFLINEEVENT, and on a timer once `offline.start()`. */
  readonly offline: OfflineDrain;
  /** Heartbeat and downtime sweep (issue 8): `recovery.start()` checks for a gap and beats. */
  readonly recovery: Recovery;
  /** Retention (issue 20): `retention.start()` prunes old data in the background. */
  readonly retention: Retention;
  /** Stops background work and closes what the services opened. */
  close(timeoutMs?: number): Promise<void>;
}

export interface ServiceOptions {
  intakeWriter?: BatchWriter;
  /**
   * PostgreSQL with several instances (issue 9): this instance's presence lock. The worker
   * leases jobs under it and frees those of dead instances; only the instance holding the
   * alert lock runs the alert checks.
   */
  instanceLock?: InstanceLock;
  worker?: Partial<WorkerOptions>;
  processor?: ProcessorOptions;
}

export function createServices(deps: Deps, opts: ServiceOptions = {}): Services {
  const intake = createIntake(deps, { writer: opts.intakeWriter });
  const mailer = createMailer();
  const offline = createOfflineDrain(deps, { onStored: () => worker.notify() });
  const worker = createWorker(deps, {
    // The intake comes first: no new claim while deliveries wait for their commit (SQLite
    // has one writer; a worker transaction would make them wait), nor during a flood of
    // more than 1,000 deliveries a second (processing then catches up afterwards); at most
    // 1 s in a row, so processing never stops entirely.
    shouldYield: () => intake.busy() || intake.recentRate() > 1000,
    instanceLock: opts.instanceLock,
    ...opts.worker,
    handlers: {
      process_event: offline.wrap(createEventProcessor(deps, { mailer, ...opts.processor })),
      lifecycle: lifecycleHandler,
      alert: createAlertJobHandler({ mailer }),
      ...opts.worker?.handlers,
    },
  });
  intake.onStored(() => worker.notify());
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
      await worker.stop(timeoutMs);
      mailer.close();
    },
  };
}

/** Every route the app mounts, in one list (manifest handlers included). */
export function appParts(deps: Deps, services: Services): Parts {
  return {
    routes: [
      installRoutes(deps),
      uiRoutes(deps, {
        notifyWorker: () => services.worker.notify(),
        sweeper: services.recovery.sweeper,
      }),
    ],
    fast: [services.intake.route],
  };
}
