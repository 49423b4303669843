import type { Knex } from 'knex';

/** Job kinds the worker knows (see server/queue/). */
export type JobType = 'process_event' | 'lifecycle';

export interface NewJob {
  type: JobType;
  event_id: number | null;
  portal_id: number | null;
  entity_key: string | null;
  payload: string | null;
  max_attempts: number;
  run_at: number;
}

export function jobRow(job: NewJob, now: number) {
  return { ...job, status: 'pending', attempts: 0, created_at: now, updated_at: now };
}

export async function insertJobs(db: Knex, jobs: NewJob[], now: number): Promise<void> {
  for (let i = 0; i < jobs.length; i += 500) {
    await db('jobs').insert(jobs.slice(i, i + 500).map((j) => jobRow(j, now)));
  }
}
