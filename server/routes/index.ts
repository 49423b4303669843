import type { Deps } from '../deps.js';
import { createMailer, type Mailer } from '../actions/index.js';
import { createIntake, type Intake } from '../intake/intake.js';
import type { BatchWriter } from '../intake/writer.js';
import { installRoutes } from '../install/install-route.js';
import { lifecycleHandler } from '../install/lifecycle.js';
import { createEventProcessor, type ProcessorOptions } from '../processing/process-event.js';
import { createWorker, type Worker, type WorkerOptions } from '../queue/worker.js';
import type { Parts } from '../start.js';

/** Long-lived parts shared by routes and background work. */
export interface Services {
  readonly intake: Intake;
  readonly worker: Worker;
  readonly mailer: Mailer;
  /** Stops background work and closes what the services opened. */
  close(timeoutMs?: number): Promise<void>;
}

export interface ServiceOptions {
  intakeWriter?: BatchWriter;
  worker?: Partial<WorkerOptions>;
  processor?: ProcessorOptions;
}

export function createServices(deps: Deps, opts: ServiceOptions = {}): Services {
  const intake = createIntake(deps, { writer: opts.intakeWriter });
  const mailer = createMailer();
  const worker = createWorker(deps, {
    ...opts.worker,
    handlers: {
      process_event: createEventProcessor(deps, { mailer, ...opts.processor }),
      lifecycle: lifecycleHandler,
      ...opts.worker?.handlers,
    },
  });
  intake.onStored(() => worker.notify());
  return {
    intake,
    worker,
    mailer,
    async close(timeoutMs = 30_000) {
      await intake.close();
      await worker.stop(timeoutMs);
      mailer.close();
    },
  };
}

/** Every route the app mounts, in one list (manifest handlers included). */
export function appParts(deps: Deps, services: Services): Parts {
  return { routes: [installRoutes(deps)], fast: [services.intake.route] };
}
