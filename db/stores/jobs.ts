import type { Knex } from 'knex';
import type { JobRow } from '../../server/queue/types.js';
import { isPg } from '../connect.js';
import { liveInstanceKeys } from './instances.js';

/** Job kinds the worker knows (see server/queue/); `alert` is one alert on one channel (server/alerts/). */
export type JobType = 'process_event' | 'lifecycle' | 'alert';

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
  for (let i = 0; i < jobs.length; i += 400) {
    await db('jobs').insert(jobs.slice(i, i + 400).map((j) => jobRow(j, now)));
  }
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function normaliseJob(r: Record<string, unknown>): JobRow {
  return {
    ...(r as unknown as JobRow),
    id: Number(r.id),
    event_id: num(r.event_id),
    portal_id: num(r.portal_id),
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
    run_at: Number(r.run_at),
    locked_at: num(r.locked_at),
  };
}

/**
 * Claims up to `limit` due jobs for `workerId`. A job with an entity key is claimable only
 * when no earlier job of the same entity is still pending or running, so the events of one
 * entity run one at a time and in arrival order; different entities run in parallel.
 *
 * On PostgreSQL several instances claim at once: the candidates are read `FOR UPDATE SKIP
 * LOCKED`, so an instance passes over rows another one is claiming instead of queueing
 * behind it. Per-entity order holds across instances: an entity's next job is a candidate
 * only once every earlier one is committed as done or dead, and a job being claimed (locked
 * but still `pending` to others) keeps its successors out, since they see it pending.
 */
export async function claimJobs(
  db: Knex,
  opts: { workerId: string; now: number; limit: number; excludeIds?: readonly number[] },
): Promise<JobRow[]> {
  return db.transaction(async (trx) => {
    const q = trx('jobs as j')
      .select('j.*')
      .where('j.status', 'pending')
      .where('j.run_at', '<=', opts.now)
      .where((w) =>
        w.whereNull('j.entity_key').orWhereNotExists(function () {
          this.select(trx.raw('1'))
            .from('jobs as k')
            .whereRaw('k.entity_key = j.entity_key')
            .whereRaw('k.id < j.id')
            .whereIn('k.status', ['pending', 'running']);
        }),
      )
      .orderBy([
        { column: 'j.run_at', order: 'asc' },
        { column: 'j.id', order: 'asc' },
      ])
      .limit(opts.limit);
    if (opts.excludeIds?.length) q.whereNotIn('j.id', opts.excludeIds);
    if (isPg(trx)) q.forUpdate('j').skipLocked();
    const rows = ((await q) as Record<string, unknown>[]).map(normaliseJob);
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const claimed = await trx('jobs')
      .whereIn('id', ids)
      .where('status', 'pending')
      .update({
        status: 'running',
        locked_at: opts.now,
        locked_by: opts.workerId,
        attempts: trx.raw('attempts + 1'),
        updated_at: opts.now,
      });
    if (claimed !== rows.length) {
      // Another instance took some of them between our read and write: keep only ours.
      const mine = (await trx('jobs')
        .whereIn('id', ids)
        .where({ status: 'running', locked_by: opts.workerId, locked_at: opts.now })
        .select('*')) as Record<string, unknown>[];
      return mine.map(normaliseJob);
    }
    return rows.map((r) => ({
      ...r,
      status: 'running' as const,
      attempts: r.attempts + 1,
      locked_at: opts.now,
      locked_by: opts.workerId,
    }));
  });
}

export async function completeJob(db: Knex, id: number, now: number): Promise<void> {
  await db('jobs').where({ id }).update({
    status: 'done',
    locked_at: null,
    locked_by: null,
    last_error: null,
    updated_at: now,
  });
}

export async function rescheduleJob(
  db: Knex,
  id: number,
  values: { runAt: number; lastError: string | null; refundAttempt?: boolean; now: number },
): Promise<void> {
  await db('jobs')
    .where({ id })
    .update({
      status: 'pending',
      run_at: values.runAt,
      last_error: values.lastError,
      locked_at: null,
      locked_by: null,
      updated_at: values.now,
      ...(values.refundAttempt ? { attempts: db.raw('attempts - 1') } : {}),
    });
}

export async function killJob(db: Knex, id: number, lastError: string, now: number): Promise<void> {
  await db('jobs').where({ id }).update({
    status: 'dead',
    last_error: lastError,
    locked_at: null,
    locked_by: null,
    updated_at: now,
  });
}

/** Work left `running` by a process that died: leases older than `staleBefore` go back to pending. */
export async function releaseStaleJobs(
  db: Knex,
  staleBefore: number,
  now: number,
): Promise<number> {
  return db('jobs')
    .where('status', 'running')
    .where('locked_at', '<', staleBefore)
    .update({ status: 'pending', locked_at: null, locked_by: null, updated_at: now });
}

/**
 * PostgreSQL: returns to the queue the running jobs of instances that are gone. Every live
 * instance holds the session lock (LOCK.instance, key) and leases jobs as `…#key`
 * (server/cluster/instance-lock.ts); PostgreSQL releases that lock when the instance's
 * connection drops, so a lease whose key is not locked belongs to a dead process. Leases
 * without a key (a worker without an instance lock) are left to `releaseStaleJobs`.
 */
export async function releaseOrphanedJobs(db: Knex, now: number): Promise<number> {
  const live = await liveInstanceKeys(db);
  const leases = (await db('jobs')
    .where('status', 'running')
    .where('locked_by', 'like', '%#%')
    .distinct('locked_by')) as { locked_by: string }[];
  const gone = leases
    .map((r) => r.locked_by)
    .filter((by) => {
      const key = /#(\d+)$/.exec(by)?.[1];
      return key !== undefined && !live.has(Number(key));
    });
  if (gone.length === 0) return 0;
  return db('jobs')
    .where('status', 'running')
    .whereIn('locked_by', gone)
    .update({ status: 'pending', locked_at: null, locked_by: null, updated_at: now });
}

/** Gives back this worker's unfinished claims (graceful shutdown), refunding the attempt. */
export async function releaseJobs(
  db: Knex,
  workerId: string,
  ids: readonly number[],
  now: number,
): Promise<number> {
  if (ids.length === 0) return 0;
  return db('jobs')
    .whereIn('id', ids)
    .where({ status: 'running', locked_by: workerId })
    .update({
      status: 'pending',
      locked_at: null,
      locked_by: null,
      attempts: db.raw('attempts - 1'),
      updated_at: now,
    });
}

export async function getJob(db: Knex, id: number): Promise<JobRow | undefined> {
  const r = (await db('jobs').where({ id }).first()) as Record<string, unknown> | undefined;
  return r ? normaliseJob(r) : undefined;
}

/** The next time any pending job becomes due (for the worker's sleep). */
export async function nextDueAt(db: Knex): Promise<number | undefined> {
  const r = (await db('jobs').where('status', 'pending').min({ t: 'run_at' }).first()) as
    { t: number | string | null } | undefined;
  return r?.t === null || r?.t === undefined ? undefined : Number(r.t);
}

/**
 * Entities of a portal's process_event jobs that are due now, oldest first: what the
 * processor reads ahead in one batch.
 */
export async function dueEntityRefs(
  db: Knex,
  portalId: number,
  now: number,
  limit: number,
): Promise<Array<{ type: string; id: string }>> {
  const rows = (await db('jobs')
    .where({ portal_id: portalId, type: 'process_event', status: 'pending' })
    .orderBy('id')
    .limit(limit * 4)
    .select('entity_key', 'run_at')) as { entity_key: string | null; run_at: number | string }[];
  const seen = new Set<string>();
  const out: Array<{ type: string; id: string }> = [];
  // run_at is checked here, not in SQL, so the query walks jobs_portal_pending in id order
  // instead of sorting the due jobs of every portal.
  for (const r of rows) {
    if (r.entity_key === null || Number(r.run_at) > now || seen.has(r.entity_key)) continue;
    seen.add(r.entity_key);
    // `${portalId}:${type}:${id}`; the type itself may hold a colon (dynamic:128).
    const first = r.entity_key.indexOf(':');
    const last = r.entity_key.lastIndexOf(':');
    if (first < 0 || last <= first) continue;
    out.push({ type: r.entity_key.slice(first + 1, last), id: r.entity_key.slice(last + 1) });
    if (out.length >= limit) break;
  }
  return out;
}
