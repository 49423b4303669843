import type { Deps } from '../../server/deps.js';
import { lifecycleHandler } from '../../server/install/lifecycle.js';
import { getEvent, updateEvent } from '../../db/stores/events.js';
import type { JobRow } from '../../server/queue/types.js';
import { PausedError } from '../../server/lib/retry-errors.js';

/**
 * Runs the due `lifecycle` jobs with the real handler, the way the worker would (job done,
 * event finished unless the handler set a final status; a pause puts the job back, due
 * later, no attempt spent), without the worker itself.
 */
export async function runLifecycleJobs(
  deps: Deps,
): Promise<Array<{ jobId: number; error?: string }>> {
  const out: Array<{ jobId: number; error?: string }> = [];
  for (;;) {
    const jobs = (await deps
      .db('jobs')
      .where({ type: 'lifecycle', status: 'pending' })
      .where('run_at', '<=', deps.clock.now().getTime())
      .orderBy('id')) as JobRow[];
    if (jobs.length === 0) return out;
    for (const raw of jobs) {
      const job = {
        ...raw,
        id: Number(raw.id),
        event_id: raw.event_id === null ? null : Number(raw.event_id),
      };
      const event = job.event_id === null ? undefined : await getEvent(deps.db, job.event_id);
      const now = deps.clock.now().getTime();
      // Claimed, as the worker claims it: a delivery meanwhile may queue the next one.
      await deps
        .db('jobs')
        .where({ id: job.id })
        .update({ status: 'running', locked_at: now, locked_by: 'test', updated_at: now });
      try {
        const r = await lifecycleHandler({ deps, job, event, attempt: job.attempts + 1 });
        await deps
          .db('jobs')
          .where({ id: job.id })
          .update({ status: 'done', attempts: job.attempts + 1, updated_at: now });
        const fresh = event ? await getEvent(deps.db, event.id) : undefined;
        if (fresh && ['received', 'processing', 'unverified'].includes(fresh.status)) {
          await updateEvent(deps.db, fresh.id, {
            status: (r && r.eventStatus) ?? 'processed',
            processed_at: now,
          });
        }
        out.push({ jobId: job.id });
      } catch (e) {
        if (e instanceof PausedError) {
          await deps
            .db('jobs')
            .where({ id: job.id })
            .update({
              status: 'pending',
              run_at: now + e.resumeAfterMs,
              last_error: e.message,
              updated_at: now,
            });
          out.push({ jobId: job.id, error: e.message });
          continue;
        }
        await deps
          .db('jobs')
          .where({ id: job.id })
          .update({ status: 'dead', last_error: (e as Error).message, updated_at: now });
        out.push({ jobId: job.id, error: (e as Error).message });
      }
    }
  }
}
