import type { Deps } from '../deps.js';
import type { EventRow } from '../../db/stores/events.js';
import type { JobRow } from '../../db/stores/jobs.js';

/** The row type lives with its store; re-exported for the handlers that name it. */
export type { JobRow };

/** What a job handler gets. `event` is loaded when the job has an event_id. */
export interface JobContext {
  readonly deps: Deps;
  readonly job: JobRow;
  readonly event: EventRow | undefined;
  /** 1 on the first try. */
  readonly attempt: number;
}

/**
 * A job handler. Return normally when done; throw RetryableError / PermanentError /
 * PausedError (server/lib/retry-errors.ts) to steer retries. A handler may set the event's final
 * status itself (e.g. `skipped`); otherwise the worker marks it `processed` on success.
 */
export type JobHandler = (
  ctx: JobContext,
) => Promise<{ eventStatus?: 'processed' | 'skipped'; note?: string } | void>;
