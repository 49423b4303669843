import type { Knex } from 'knex';
import { applyEventFilter, type EventFilter } from './events.js';
import { jobRow } from './jobs.js';
import { changeEvents } from './rollups.js';

/** Statuses a replay takes by default: everything processing has finished with. */
export const REPLAYABLE = ['processed', 'failed', 'skipped'] as const;

export function replayQuery(db: Knex, filter: EventFilter): Knex.QueryBuilder {
  const q = applyEventFilter(db('events'), filter);
  // App lifecycle events are not rule events.
  q.whereNotIn('events.event', ['ONAPPINSTALL', 'ONAPPUPDATE', 'ONAPPUNINSTALL']);
  if (filter.status === undefined) q.whereIn('events.status', REPLAYABLE as unknown as string[]);
  // Never a rejected delivery (unproven), nor one still in the backlog (it has a job).
  else q.whereNotIn('events.status', ['received', 'processing', 'unverified', 'rejected']);
  return q;
}

export async function countReplayable(db: Knex, filter: EventFilter): Promise<number> {
  const r = (await replayQuery(db, filter).count({ n: '*' }).first()) as
    { n: number | string } | undefined;
  return Number(r?.n ?? 0);
}

/**
 * Queues one chunk of events for replay (ids above `afterId`, ascending) in one transaction:
 * each goes back to `received` with a new job. Events that matched no rule are evaluated
 * again; events that matched keep their rules and run the unfinished steps, or every step
 * in a new generation when `rerunSucceeded`.
 */
export async function queueReplayChunk(
  db: Knex,
  filter: EventFilter,
  opts: {
    afterId: number;
    limit: number;
    rerunSucceeded: boolean;
    maxAttempts: number;
    now: number;
  },
): Promise<{ ids: number[]; lastId: number }> {
  return db.transaction(async (trx) => {
    const rows = (await replayQuery(trx, filter)
      .where('events.id', '>', opts.afterId)
      .orderBy('events.id', 'asc')
      .limit(opts.limit)
      .select('events.id', 'events.portal_id', 'events.entity_type', 'events.entity_id')) as Array<{
      id: number | string;
      portal_id: number | null;
      entity_type: string | null;
      entity_id: string | null;
    }>;
    if (rows.length === 0) return { ids: [], lastId: opts.afterId };
    const ids = rows.map((r) => Number(r.id));
    const generations = await changeEvents(trx, ids, (t) => requeue(t, ids, opts.rerunSucceeded));
    await trx('jobs').insert(
      rows.map((r) =>
        jobRow(
          {
            type: 'process_event',
            event_id: Number(r.id),
            portal_id: r.portal_id,
            entity_key: r.entity_id ? `${r.portal_id}:${r.entity_type}:${r.entity_id}` : null,
            payload: opts.rerunSucceeded
              ? JSON.stringify({ generation: generations.get(Number(r.id)) ?? 1 })
              : null,
            max_attempts: opts.maxAttempts,
            run_at: opts.now,
          },
          opts.now,
        ),
      ),
    );
    return { ids, lastId: ids[ids.length - 1]! };
  });
}

/**
 * The events back to `received` (source `replay`), their rule matches reset as the replay
 * needs; the generation each event's steps run in with `rerunSucceeded`. Runs inside
 * changeEvents, so the rollups follow.
 */
async function requeue(
  db: Knex,
  ids: number[],
  rerunSucceeded: boolean,
): Promise<Map<number, number>> {
  const active = new Set(
    (
      (await db('rule_matches')
        .whereIn('event_id', ids)
        .whereNot('status', 'skipped')
        .distinct('event_id')) as { event_id: number | string }[]
    ).map((r) => Number(r.event_id)),
  );
  const reevaluate = ids.filter((id) => !active.has(id));
  if (reevaluate.length) {
    await db('rule_matches').whereIn('event_id', reevaluate).delete();
    await db('events').whereIn('id', reevaluate).update({ evaluated_at: null });
  }
  const generations = new Map<number, number>();
  if (rerunSucceeded) {
    const g = (await db('action_runs')
      .whereIn('event_id', ids)
      .groupBy('event_id')
      .select('event_id')
      .max({ g: 'generation' })) as Array<{
      event_id: number | string;
      g: number | string | null;
    }>;
    for (const r of g) generations.set(Number(r.event_id), Number(r.g ?? 0) + 1);
    await db('rule_matches')
      .whereIn('event_id', ids)
      .where('status', 'done')
      .update({ status: 'matched' });
  }
  await db('events').whereIn('id', ids).update({
    status: 'received',
    last_error: null,
    processed_at: null,
    attempts: 0,
    source: 'replay',
  });
  return generations;
}

/** How many of these events are still waiting or running. */
export async function countUnfinished(db: Knex, ids: readonly number[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < ids.length; i += 500) {
    const r = (await db('events')
      .whereIn('id', ids.slice(i, i + 500))
      .whereIn('status', ['received', 'processing', 'unverified'])
      .count({ n: '*' })
      .first()) as { n: number | string };
    n += Number(r.n);
  }
  return n;
}
