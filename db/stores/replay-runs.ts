import type { Knex } from 'knex';
import { BACKLOG_STATUSES } from './events.js';

/** A replay confirmed in the UI (`replay_runs`). */
export interface ReplayRunRow {
  id: number;
  portal_id: number;
  user_id: number;
  /** The form as submitted: from, to, event, status. */
  filter: Record<string, string>;
  rerun_succeeded: boolean;
  matched: number;
  queued: number;
  created_at: number;
}

/** Where the events of a replay are now. */
export interface ReplayProgress {
  queued: number;
  /** Received, processing or waiting for a retry. */
  waiting: number;
  processed: number;
  failed: number;
  skipped: number;
  /** Deleted since, or in a status a replay does not lead to. */
  other: number;
  done: boolean;
}

/** Records a replay and the ids of the events it queued, in one transaction. */
export async function createReplayRun(
  db: Knex,
  run: Omit<ReplayRunRow, 'id' | 'queued'>,
  eventIds: readonly number[],
): Promise<number> {
  return db.transaction(async (trx) => {
    const [row] = (await trx('replay_runs')
      .insert({ ...run, filter: JSON.stringify(run.filter), queued: eventIds.length })
      .returning('id')) as Array<{ id: number } | number>;
    const id = typeof row === 'object' ? Number(row.id) : Number(row);
    for (let i = 0; i < eventIds.length; i += 500) {
      await trx('replay_run_events').insert(
        eventIds.slice(i, i + 500).map((event_id) => ({ run_id: id, event_id })),
      );
    }
    return id;
  });
}

export async function getReplayRun(db: Knex, id: number): Promise<ReplayRunRow | undefined> {
  const r = (await db('replay_runs').where({ id }).first()) as Record<string, unknown> | undefined;
  if (!r) return undefined;
  return {
    id: Number(r.id),
    portal_id: Number(r.portal_id),
    user_id: Number(r.user_id),
    filter: JSON.parse(String(r.filter)) as Record<string, string>,
    rerun_succeeded: Boolean(r.rerun_succeeded),
    matched: Number(r.matched),
    queued: Number(r.queued),
    created_at: Number(r.created_at),
  };
}

/**
 * Counts a replay's events by their current status. An event replayed or retried again later
 * counts where that later run left it.
 */
export async function replayProgress(db: Knex, run: ReplayRunRow): Promise<ReplayProgress> {
  const rows = (await db('replay_run_events as r')
    .join('events as e', 'e.id', 'r.event_id')
    .where('r.run_id', run.id)
    .groupBy('e.status')
    .select('e.status')
    .count({ n: '*' })) as Array<{ status: string; n: number | string }>;
  const by = new Map(rows.map((r) => [r.status, Number(r.n)]));
  const waiting = BACKLOG_STATUSES.reduce((s, st) => s + (by.get(st) ?? 0), 0);
  const processed = by.get('processed') ?? 0;
  const failed = by.get('failed') ?? 0;
  const skipped = by.get('skipped') ?? 0;
  return {
    queued: run.queued,
    waiting,
    processed,
    failed,
    skipped,
    other: run.queued - waiting - processed - failed - skipped,
    done: waiting === 0,
  };
}
