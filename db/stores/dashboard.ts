import type { Knex } from 'knex';
import { HOUR, windowRows } from './rollups.js';

export interface Series {
  /** Start of each bucket, ms since the epoch. */
  starts: number[];
  received: number[];
  failed: number[];
}

/**
 * Events received per hour (and how many of them failed) over the last `hours` hours, the
 * current one last, from the rollups (`ev` rows), so the cost does not grow with the events
 * table and pruned events still count.
 */
export function eventSeries(
  db: Knex,
  portalId: number,
  now: number,
  hours: number,
): Promise<Series> {
  // The last bucket is the current hour (it ends after `now`).
  const end = Math.floor(now / HOUR) * HOUR + HOUR;
  const edges = Array.from({ length: hours + 1 }, (_, i) => end - (hours - i) * HOUR);
  return eventSeriesBetween(db, portalId, edges);
}

/**
 * Events received (and failed) between each pair of `edges` (ascending instants: n + 1 edges
 * make n buckets), summed from the hourly rollups: the dashboard's days are the user's days,
 * which start at local midnight, not at 00:00 UTC as the daily rollups' do. An hour is
 * counted in the bucket its start falls in (in a zone whose offset is not whole hours, such
 * as UTC+5:30, the half hour around midnight goes to one side). Hourly rows are kept 90 days.
 */
export async function eventSeriesBetween(
  db: Knex,
  portalId: number,
  edges: readonly number[],
): Promise<Series> {
  const buckets = edges.length - 1;
  const rows = (await db('rollups')
    .where({ kind: 'ev', grain: 'h', portal_id: portalId })
    .where('bucket', '>=', edges[0]!)
    .where('bucket', '<', edges[buckets]!)
    .select({ b: 'bucket', status: 'k2' })
    .sum({ n: 'n' })
    .groupBy('bucket', 'k2')) as Array<{ b: number | string; status: string; n: number | string }>;
  const series: Series = {
    starts: edges.slice(0, buckets),
    received: new Array<number>(buckets).fill(0),
    failed: new Array<number>(buckets).fill(0),
  };
  for (const r of rows) {
    const b = Number(r.b);
    // The last edge at or before the hour's start (an hour straddling an edge goes to the
    // bucket its start is in).
    let i = 0;
    while (i + 1 < buckets && edges[i + 1]! <= b) i++;
    series.received[i]! += Number(r.n);
    if (r.status === 'failed') series.failed[i]! += Number(r.n);
  }
  return series;
}

export interface RuleFigures {
  rule: string;
  succeeded: number;
  failed: number;
  other: number;
}

/** Per-rule outcomes of the action steps started since `since`, for one portal (rollups). */
export async function ruleSuccess(
  db: Knex,
  portalId: number,
  since: number,
  now: number,
): Promise<RuleFigures[]> {
  const byRule = new Map<string, RuleFigures>();
  for (const r of await windowRows(db, 'act', portalId, since, now)) {
    const rule = String(r.k1);
    const f = byRule.get(rule) ?? { rule, succeeded: 0, failed: 0, other: 0 };
    const n = Number(r.n);
    if (r.k2 === 'succeeded') f.succeeded += n;
    else if (r.k2 === 'failed') f.failed += n;
    else f.other += n;
    byRule.set(rule, f);
  }
  return [...byRule.values()]
    .filter((f) => f.succeeded + f.failed + f.other > 0)
    .sort((a, b) => a.rule.localeCompare(b.rule));
}
