import type { Knex } from 'knex';

export interface Series {
  /** Start of each bucket, ms since the epoch. */
  starts: number[];
  received: number[];
  failed: number[];
}

/**
 * Events received per bucket (and how many of them failed) over `buckets` buckets ending at
 * `now`. Counting reads only the (portal_id, received_at) index; failures come through the
 * (portal_id, status, id) index, so neither touches most rows.
 */
export async function eventSeries(
  db: Knex,
  portalId: number,
  now: number,
  bucketMs: number,
  buckets: number,
): Promise<Series> {
  // The last bucket is the current one (it ends after `now`).
  const end = Math.floor(now / bucketMs) * bucketMs + bucketMs;
  const start = end - bucketMs * buckets;
  const bucket = db.raw('cast((received_at - ?) / ? as integer)', [start, bucketMs]);
  const base = () =>
    db('events')
      .where('portal_id', portalId)
      .where('received_at', '>=', start)
      .where('received_at', '<', end);
  const [all, failed] = (await Promise.all([
    base().select({ b: bucket }).count({ n: '*' }).groupBy('b'),
    base().where('status', 'failed').select({ b: bucket }).count({ n: '*' }).groupBy('b'),
  ])) as Array<Array<{ b: number | string; n: number | string }>>;
  const series: Series = {
    starts: Array.from({ length: buckets }, (_, i) => start + i * bucketMs),
    received: new Array<number>(buckets).fill(0),
    failed: new Array<number>(buckets).fill(0),
  };
  for (const r of all ?? []) {
    const i = Number(r.b);
    if (i >= 0 && i < buckets) series.received[i] = Number(r.n);
  }
  for (const r of failed ?? []) {
    const i = Number(r.b);
    if (i >= 0 && i < buckets) series.failed[i] = Number(r.n);
  }
  return series;
}

export interface RuleFigures {
  rule: string;
  succeeded: number;
  failed: number;
  other: number;
}

/** Per-rule outcomes of the action steps started since `since`, for one portal. */
export async function ruleSuccess(
  db: Knex,
  portalId: number,
  since: number,
): Promise<RuleFigures[]> {
  // CROSS JOIN keeps action_runs as the outer loop on SQLite (its started_at index, then
  // events by primary key); left to itself the planner walks every event of the portal.
  const answer = (await db.raw(
    `select ar.rule_name as rule, ar.status as status, count(*) as n
       from action_runs ar cross join events e
      where e.id = ar.event_id and e.portal_id = ? and ar.started_at >= ?
      group by ar.rule_name, ar.status`,
    [portalId, since],
  )) as unknown;
  const rows = (Array.isArray(answer) ? answer : (answer as { rows: unknown[] }).rows) as Array<{
    rule: string;
    status: string;
    n: number | string;
  }>;
  const byRule = new Map<string, RuleFigures>();
  for (const r of rows) {
    const f = byRule.get(r.rule) ?? { rule: r.rule, succeeded: 0, failed: 0, other: 0 };
    if (r.status === 'succeeded') f.succeeded += Number(r.n);
    else if (r.status === 'failed') f.failed += Number(r.n);
    else f.other += Number(r.n);
    byRule.set(r.rule, f);
  }
  return [...byRule.values()].sort((a, b) => a.rule.localeCompare(b.rule));
}
