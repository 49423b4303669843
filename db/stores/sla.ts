import type { Knex } from 'knex';
import { isSqlite } from '../connect.js';
import { BACKLOG_STATUSES } from './events.js';
import { windowSumsByPortal } from './rollups.js';

/** A rule with an SLA as one portal applies it. */
export interface SlaRule {
  name: string;
  /** Event names the rule listens to (for events whose rules are not evaluated yet). */
  on: readonly string[];
  slaSeconds: number;
}

export interface SlaBreachRow {
  event_id: number;
  rule_name: string;
  portal_id: number | null;
  member_id: string | null;
  sla_seconds: number;
  received_at: number;
  detected_at: number;
  /** `pending`: seen while the event was still unprocessed; `late`: seen after it finished. */
  seen: 'pending' | 'late';
}

/**
 * A portal's backlog: `e.portal_id = ?` with the backlog statuses, and the other terms kept
 * from the planner (`+`), so SQLite, which has no ANALYZE statistics, seeks the portal's
 * backlog through (portal_id, status, id) and reads nothing else. Left to itself it picks the
 * (portal_id, received_at) or (portal_id, event, id) index and reads every event of the
 * portal in the period, processed ones included. (Before, the portal was the term kept from
 * the planner, and each query read every portal's backlog through (status, received_at):
 * with an SLA rule in the default map, two such reads per portal at every alert check, 18 s
 * of a 5,000-portal check.)
 */
const unindexed = (db: Knex, column: string) => (isSqlite(db) ? `+${column}` : column);

const notRecorded = (db: Knex, rule: string) =>
  function (this: Knex.QueryBuilder) {
    this.select(db.raw('1'))
      .from('sla_breaches as b')
      .whereRaw('b.event_id = e.id')
      .where('b.rule_name', rule);
  };

const breachRow = (
  portal: { id: number; memberId: string },
  rule: SlaRule,
  r: { id: number | string; received_at: number | string },
  seen: 'pending' | 'late',
  now: number,
): SlaBreachRow => ({
  event_id: Number(r.id),
  rule_name: rule.name,
  portal_id: portal.id,
  member_id: portal.memberId,
  sla_seconds: rule.slaSeconds,
  received_at: Number(r.received_at),
  detected_at: now,
  seen,
});

/**
 * Events of a portal still pending past a rule's SLA that are not recorded as breaches yet:
 * matched the rule, or not evaluated yet and of an event the rule listens to. Both read the
 * portal's backlog only (`unindexed`).
 */
export async function findPendingSlaBreaches(
  db: Knex,
  portal: { id: number; memberId: string },
  rule: SlaRule,
  now: number,
): Promise<SlaBreachRow[]> {
  return (await findPendingSlaBreachesOf(db, [portal], rule, now)).get(portal.id) ?? [];
}

/**
 * findPendingSlaBreaches of several portals that apply the same rule (at most a few hundred:
 * bound parameters), by portal id: the same two queries for all of them, each seeking the
 * backlog of every one of them. With an SLA rule in the default map, two queries per portal
 * at every alert check were 10,000 with 5,000 portals.
 */
export async function findPendingSlaBreachesOf(
  db: Knex,
  portals: ReadonlyArray<{ id: number; memberId: string }>,
  rule: SlaRule,
  now: number,
): Promise<Map<number, SlaBreachRow[]>> {
  const out = new Map<number, SlaBreachRow[]>();
  if (portals.length === 0) return out;
  const ids = portals.map((p) => p.id);
  const deadline = now - rule.slaSeconds * 1000;
  type Hit = { portal_id: number | string; id: number | string; received_at: number | string };
  const matched = (await db('events as e')
    .join('rule_matches as rm', 'rm.event_id', 'e.id')
    .whereIn('e.portal_id', ids)
    .whereIn('e.status', BACKLOG_STATUSES)
    .whereRaw(`${unindexed(db, 'e.received_at')} < ?`, [deadline])
    .where('rm.rule_name', rule.name)
    .where('rm.status', 'matched')
    // Replayed after it (or its rule) was done: its SLA was kept or missed then (0032, 0035).
    .whereNull('e.sla_done_at')
    .whereNull('rm.done_at')
    .whereNotExists(notRecorded(db, rule.name))
    .select('e.portal_id', 'e.id', 'e.received_at')) as Hit[];
  const unevaluated = rule.on.length
    ? ((await db('events as e')
        .whereIn('e.portal_id', ids)
        .whereIn('e.status', BACKLOG_STATUSES)
        .whereNull('e.evaluated_at')
        .whereNull('e.sla_done_at')
        .whereRaw(`${unindexed(db, 'e.event')} in (${rule.on.map(() => '?').join(', ')})`, [
          ...rule.on,
        ])
        .whereRaw(`${unindexed(db, 'e.received_at')} < ?`, [deadline])
        .whereNotExists(notRecorded(db, rule.name))
        .select('e.portal_id', 'e.id', 'e.received_at')) as Hit[])
    : [];
  const byId = new Map(portals.map((p) => [p.id, p]));
  // Per portal, its matched events first, then its unevaluated ones (as one portal's search).
  for (const r of [...matched, ...unevaluated]) {
    const portal = byId.get(Number(r.portal_id));
    if (!portal) continue;
    const rows = out.get(portal.id) ?? [];
    rows.push(breachRow(portal, rule, r, 'pending', now));
    out.set(portal.id, rows);
  }
  return out;
}

/**
 * Most processed events one step of the late search reads. A step is two index reads of
 * at most this many entries (the (portal_id, status, processed_at, received_at) index of
 * migration 0003 holds every column they test), so it stays short at any table size.
 */
export const LATE_STEP_ROWS = 2000;

/**
 * One step of the search for events finished late: of the portal's events processed after
 * `after` and at most `upTo` (by processed_at), the next `LATE_STEP_ROWS`; returns those
 * received since `lateSince`, done for one of `rules` past its SLA and not recorded yet, and
 * where the next step starts (undefined: the range is done).
 */
export async function findLateSlaBreachesStep(
  db: Knex,
  portal: { id: number; memberId: string },
  rules: readonly SlaRule[],
  range: { after: number; upTo: number; lateSince: number },
  now: number,
  stepRows = LATE_STEP_ROWS,
): Promise<{ rows: SlaBreachRow[]; next: number | undefined }> {
  if (rules.length === 0) return { rows: [], next: undefined };
  const processed = () =>
    db('events as e')
      .where('e.portal_id', portal.id)
      .where('e.status', 'processed')
      .where('e.processed_at', '>', range.after);
  // Where this step ends: the processed_at of the step's last event (ties come along).
  const edge = (await processed()
    .where('e.processed_at', '<=', range.upTo)
    .orderBy('e.processed_at', 'asc')
    .offset(stepRows - 1)
    .first('e.processed_at')) as { processed_at: number | string } | undefined;
  const end = edge ? Number(edge.processed_at) : range.upTo;
  const minSlaMs = Math.min(...rules.map((r) => r.slaSeconds * 1000));
  const hits = (await processed()
    .join('rule_matches as rm', 'rm.event_id', 'e.id')
    .where('e.processed_at', '<=', end)
    .where('e.received_at', '>=', range.lateSince)
    // Judged by when the rule was first done (migration 0035), else by the event's first
    // completion (a replay after it, migration 0032), else by its processing.
    .whereRaw('coalesce(rm.done_at, e.sla_done_at, e.processed_at) - e.received_at > ?', [minSlaMs])
    .whereIn(
      'rm.rule_name',
      rules.map((r) => r.name),
    )
    .where('rm.status', 'done')
    .whereNotExists(function (this: Knex.QueryBuilder) {
      this.select(db.raw('1'))
        .from('sla_breaches as b')
        .whereRaw('b.event_id = e.id')
        .whereRaw('b.rule_name = rm.rule_name');
    })
    .select(
      'e.id',
      'e.received_at',
      'e.processed_at',
      'e.sla_done_at',
      'rm.rule_name',
      'rm.done_at',
    )) as Array<{
    id: number | string;
    received_at: number | string;
    processed_at: number | string;
    sla_done_at: number | string | null;
    rule_name: string;
    done_at: number | string | null;
  }>;
  const rows: SlaBreachRow[] = [];
  for (const h of hits) {
    const rule = rules.find((r) => r.name === h.rule_name);
    const tookMs = Number(h.done_at ?? h.sla_done_at ?? h.processed_at) - Number(h.received_at);
    if (rule && tookMs > rule.slaSeconds * 1000) rows.push(breachRow(portal, rule, h, 'late', now));
  }
  return { rows, next: edge && end < range.upTo ? end : undefined };
}

/** Most rows one recordSlaBreaches statement inserts (eight bound parameters each). */
const RECORD_ROWS = 250;

const breachKey = (r: { event_id: number | string; rule_name: string }) =>
  `${Number(r.event_id)}\u0000${r.rule_name}`;

/**
 * Records breaches, 250 rows a statement in one transaction; returns the ones that were new
 * (another instance may have won some), in `rows` order, a breach named twice once. The
 * alert check records a whole batch of portals' breaches at once: with an SLA rule put in the
 * default map, a statement per breach and a transaction per portal were thousands.
 */
export async function recordSlaBreaches(
  db: Knex,
  rows: readonly SlaBreachRow[],
): Promise<SlaBreachRow[]> {
  if (rows.length === 0) return [];
  const inserted = new Set<string>();
  // One transaction (one commit) for the lot: a backlog past its SLA can be thousands.
  await db.transaction(async (trx) => {
    for (let i = 0; i < rows.length; i += RECORD_ROWS) {
      const out = (await trx('sla_breaches')
        .insert(rows.slice(i, i + RECORD_ROWS))
        .onConflict(['event_id', 'rule_name'])
        .ignore()
        .returning(['event_id', 'rule_name'])) as Array<{
        event_id: number | string;
        rule_name: string;
      }>;
      for (const r of out) inserted.add(breachKey(r));
    }
  });
  return rows.filter((r) => inserted.delete(breachKey(r)));
}

/**
 * Of these portals (at most a few hundred: bound parameters), the member_ids with any
 * breach recorded: one statement of one seek per portal (`sla_breaches_member`), the test
 * pendingSlaBreaches starts with, for a batch of portals.
 */
export async function portalsWithSlaBreaches(
  db: Knex,
  memberIds: readonly string[],
): Promise<Set<string>> {
  if (memberIds.length === 0) return new Set();
  const rows = (await db('portals as p')
    .whereIn('p.member_id', [...memberIds])
    .whereExists(function (this: Knex.QueryBuilder) {
      this.select(db.raw('1')).from('sla_breaches as b').whereRaw('b.member_id = p.member_id');
    })
    .pluck('p.member_id')) as string[];
  return new Set(rows);
}

export interface PendingBreaches {
  /** Events past an SLA that are still unprocessed. */
  events: number;
  byRule: Array<{ rule: string; events: number }>;
  oldestReceivedAt: number | undefined;
}

/**
 * A portal's recorded breaches whose events are still unprocessed. A portal without any
 * recorded breach (most: no SLA, or none missed) costs one seek (`sla_breaches_member`).
 * Otherwise it reads the portal's backlog (`events_portal_status_id`; CROSS JOIN keeps
 * events the outer loop on SQLite) and looks each event's breaches up by event id (the
 * member_id test is kept from its index): breaches of events long finished pile up for the
 * retention period and are never read here. Before, the backlog of every portal was read at
 * each check, for every portal: 400 ms at 700,000 waiting events.
 */
export async function pendingSlaBreaches(
  db: Knex,
  portal: { id: number; memberId: string },
  /** The caller knows the portal has a breach recorded: the first seek is left out. */
  hasBreach = false,
): Promise<PendingBreaches> {
  if (
    !hasBreach &&
    !(await db('sla_breaches').where('member_id', portal.memberId).first('event_id'))
  ) {
    return { events: 0, byRule: [], oldestReceivedAt: undefined };
  }
  const answer = (await db.raw(
    `select b.rule_name as rule_name, b.event_id as event_id, b.received_at as t
       from events e cross join sla_breaches b
      where b.event_id = e.id and e.status in ('received', 'processing', 'unverified')
        and e.sla_done_at is null and e.portal_id = ? and (b.member_id || '') = ?`,
    [portal.id, portal.memberId],
  )) as unknown;
  const rows = (Array.isArray(answer) ? answer : (answer as { rows: unknown[] }).rows) as Array<{
    rule_name: string;
    event_id: number | string;
    t: number | string;
  }>;
  return pendingOf(rows);
}

/**
 * pendingSlaBreaches of several portals known to have a breach recorded (at most a few
 * hundred: bound parameters), by portal id: one query reading those portals' backlogs
 * (`events_portal_status_id`), each event's breaches looked up by event id. With an SLA rule
 * in the default map and a backlog past it, one query per portal at every alert check was
 * 3,850 of its 3,957 queries with 5,000 portals.
 */
export async function pendingSlaBreachesOf(
  db: Knex,
  portals: ReadonlyArray<{ id: number; memberId: string }>,
): Promise<Map<number, PendingBreaches>> {
  const out = new Map<number, PendingBreaches>();
  if (portals.length === 0) return out;
  const answer = (await db.raw(
    `select e.portal_id as p, b.member_id as m, b.rule_name as rule_name,
            b.event_id as event_id, b.received_at as t
       from events e cross join sla_breaches b
      where b.event_id = e.id and e.status in ('received', 'processing', 'unverified')
        and e.sla_done_at is null and e.portal_id in (${portals.map(() => '?').join(', ')})`,
    portals.map((p) => p.id),
  )) as unknown;
  const rows = (Array.isArray(answer) ? answer : (answer as { rows: unknown[] }).rows) as Array<{
    p: number | string;
    m: string | null;
    rule_name: string;
    event_id: number | string;
    t: number | string;
  }>;
  const member = new Map(portals.map((p) => [p.id, p.memberId]));
  const byPortal = new Map<number, typeof rows>();
  for (const r of rows) {
    // The portal's own breaches, as `b.member_id = ?` of the single query.
    if (r.m === null || member.get(Number(r.p)) !== r.m) continue;
    const list = byPortal.get(Number(r.p)) ?? [];
    list.push(r);
    byPortal.set(Number(r.p), list);
  }
  for (const p of portals) out.set(p.id, pendingOf(byPortal.get(p.id) ?? []));
  return out;
}

function pendingOf(
  rows: ReadonlyArray<{ rule_name: string; event_id: number | string; t: number | string }>,
): PendingBreaches {
  const byRule = new Map<string, number>();
  const events = new Set<number>();
  let oldest: number | undefined;
  for (const r of rows) {
    byRule.set(r.rule_name, (byRule.get(r.rule_name) ?? 0) + 1);
    events.add(Number(r.event_id));
    oldest = Math.min(oldest ?? Infinity, Number(r.t));
  }
  return {
    events: events.size,
    byRule: [...byRule.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([rule, n]) => ({ rule, events: n })),
    oldestReceivedAt: oldest,
  };
}

/**
 * SLA figures of one rule on one portal for events received since `since`: `total` counts the
 * decided ones (finished, or still pending past the deadline), `withinSla` those whose rule
 * was done and that were processed within `slaSeconds` of receipt (a replayed event: by its
 * first completion, `sla_done_at`). Finished and replayed events come from the rollups (`sla`
 * rows, judged against the SLA the rule had when it matched); pending ones never done from
 * the portal's backlog only (`unindexed`), never from a scan of the period's events.
 */
export async function slaCounts(
  db: Knex,
  portalId: number,
  rule: Pick<SlaRule, 'name' | 'slaSeconds'>,
  since: number,
  now: number,
): Promise<{ total: number; withinSla: number }> {
  const [counts] = await slaCountsOf(db, [{ portalId, rule }], since, now);
  return counts ?? { total: 0, withinSla: 0 };
}

/** Most portals whose SLA figures one query names (bound parameters); more: all are read. */
const COUNTS_CHUNK = 500;

/**
 * slaCounts of many (portal, rule) pairs, in the pairs' order, in a few queries whatever the
 * number of portals: the rollups of the period, and the pending events past each rule's SLA
 * (per rule name and SLA), each summed per portal in the query. Up to COUNTS_CHUNK portals
 * they are named and their rows sought (the dashboard: one); more are read for every portal
 * (the period's rollups; the backlog received in the period). `status --json` with an SLA rule
 * in the default map made three queries per portal and rule for each period: 30,000 with
 * 5,000 portals.
 */
export async function slaCountsOf(
  db: Knex,
  pairs: ReadonlyArray<{ portalId: number; rule: Pick<SlaRule, 'name' | 'slaSeconds'> }>,
  since: number,
  now: number,
): Promise<Array<{ total: number; withinSla: number }>> {
  const named = (ids: ReadonlySet<number>) => (ids.size > COUNTS_CHUNK ? undefined : [...ids]);
  const sums = pairs.length
    ? await windowSumsByPortal(db, 'sla', named(new Set(pairs.map((p) => p.portalId))), since, now)
    : new Map<number, Map<string, { n: number; s: number }>>();
  // Pending past the deadline, per rule and SLA: the portals applying it, by portal id.
  const groups = new Map<string, { name: string; slaSeconds: number; ids: Set<number> }>();
  for (const { portalId, rule } of pairs) {
    const key = JSON.stringify([rule.name, rule.slaSeconds]);
    const g = groups.get(key) ?? { name: rule.name, slaSeconds: rule.slaSeconds, ids: new Set() };
    g.ids.add(portalId);
    groups.set(key, g);
  }
  const pending = new Map<string, number>();
  for (const [key, g] of groups) {
    const ids = named(g.ids);
    // CROSS JOIN keeps events as the outer loop on SQLite (PostgreSQL plans it as an ordinary
    // join): named portals' backlogs only (`unindexed`), else the period's backlog.
    const receivedAt = ids ? unindexed(db, 'e.received_at') : 'e.received_at';
    const answer = (await db.raw(
      `select e.portal_id as p, count(*) as n from events e cross join rule_matches rm
        where rm.event_id = e.id and e.status in ('received', 'processing', 'unverified')
          and e.sla_done_at is null
          and ${receivedAt} >= ? and ${receivedAt} < ?
          ${ids ? `and e.portal_id in (${ids.map(() => '?').join(', ')})` : ''}
          and rm.rule_name = ? and rm.status <> 'skipped' and rm.done_at is null
        group by e.portal_id`,
      [since, now - g.slaSeconds * 1000, ...(ids ?? []), g.name],
    )) as unknown;
    const rows = (Array.isArray(answer) ? answer : (answer as { rows: unknown[] }).rows) as Array<{
      p: number | string | null;
      n: number | string;
    }>;
    for (const r of rows) {
      if (r.p !== null && g.ids.has(Number(r.p)))
        pending.set(`${Number(r.p)}\u0000${key}`, Number(r.n));
    }
  }
  return pairs.map(({ portalId, rule }) => {
    const sum = sums.get(portalId)?.get(rule.name);
    const key = JSON.stringify([rule.name, rule.slaSeconds]);
    return {
      total: (sum?.n ?? 0) + (pending.get(`${portalId}\u0000${key}`) ?? 0),
      withinSla: sum?.s ?? 0,
    };
  });
}

/** lateTotals of several portals (at most a few hundred: bound parameters), by portal id. */
export async function lateTotalsOf(
  db: Knex,
  portalIds: readonly number[],
): Promise<Map<number, Map<string, number>>> {
  const out = new Map<number, Map<string, number>>();
  if (portalIds.length === 0) return out;
  const rows = (await db('rollups')
    .where({ kind: 'late', grain: 'a' })
    .whereIn('portal_id', [...portalIds])
    .select({ p: 'portal_id', rule: 'k1' })
    .sum({ n: 'n' })
    .groupBy('portal_id', 'k1')) as Array<{
    p: number | string;
    rule: string;
    n: number | string | null;
  }>;
  for (const r of rows) {
    const m = out.get(Number(r.p)) ?? new Map<string, number>();
    m.set(r.rule, Number(r.n ?? 0));
    out.set(Number(r.p), m);
  }
  return out;
}

/** Per rule, how many of a portal's events ever finished past its SLA (rollups, `late`). */
export async function lateTotals(db: Knex, portalId: number): Promise<Map<string, number>> {
  const rows = (await db('rollups')
    .where({ kind: 'late', grain: 'a', portal_id: portalId })
    .select({ rule: 'k1' })
    .sum({ n: 'n' })
    .groupBy('k1')) as Array<{ rule: string; n: number | string | null }>;
  return new Map(rows.map((r) => [r.rule, Number(r.n ?? 0)]));
}
