import type { Knex } from 'knex';
import { BACKLOG_STATUSES } from './events.js';

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

const notRecorded = (db: Knex, rule: string) =>
  function (this: Knex.QueryBuilder) {
    this.select(db.raw('1'))
      .from('sla_breaches as b')
      .whereRaw('b.event_id = e.id')
      .where('b.rule_name', rule);
  };

/**
 * Events of a portal past a rule's SLA that are not recorded as breaches yet: still pending
 * (matched the rule, or not evaluated yet and of an event the rule listens to), or finished
 * late since `lateSince` (received_at).
 */
export async function findNewSlaBreaches(
  db: Knex,
  portal: { id: number; memberId: string },
  rule: SlaRule,
  now: number,
  lateSince: number,
): Promise<SlaBreachRow[]> {
  const slaMs = rule.slaSeconds * 1000;
  const deadline = now - slaMs;
  const row = (
    r: { id: number | string; received_at: number | string },
    seen: 'pending' | 'late',
  ) =>
    ({
      event_id: Number(r.id),
      rule_name: rule.name,
      portal_id: portal.id,
      member_id: portal.memberId,
      sla_seconds: rule.slaSeconds,
      received_at: Number(r.received_at),
      detected_at: now,
      seen,
    }) satisfies SlaBreachRow;
  type Hit = { id: number | string; received_at: number | string };
  const matched = (await db('events as e')
    .join('rule_matches as rm', 'rm.event_id', 'e.id')
    .where('e.portal_id', portal.id)
    .whereIn('e.status', BACKLOG_STATUSES)
    .where('e.received_at', '<', deadline)
    .where('rm.rule_name', rule.name)
    .where('rm.status', 'matched')
    .whereNotExists(notRecorded(db, rule.name))
    .select('e.id', 'e.received_at')) as Hit[];
  const unevaluated = rule.on.length
    ? ((await db('events as e')
        .where('e.portal_id', portal.id)
        .whereIn('e.status', BACKLOG_STATUSES)
        .whereNull('e.evaluated_at')
        .whereIn('e.event', [...rule.on])
        .where('e.received_at', '<', deadline)
        .whereNotExists(notRecorded(db, rule.name))
        .select('e.id', 'e.received_at')) as Hit[])
    : [];
  const late = (await db('events as e')
    .join('rule_matches as rm', 'rm.event_id', 'e.id')
    .where('e.portal_id', portal.id)
    .where('e.status', 'processed')
    .where('e.received_at', '>=', lateSince)
    .whereRaw('e.processed_at - e.received_at > ?', [slaMs])
    .where('rm.rule_name', rule.name)
    .where('rm.status', 'done')
    .whereNotExists(notRecorded(db, rule.name))
    .select('e.id', 'e.received_at')) as Hit[];
  return [
    ...matched.map((r) => row(r, 'pending')),
    ...unevaluated.map((r) => row(r, 'pending')),
    ...late.map((r) => row(r, 'late')),
  ];
}

/** Records breaches; returns the ones that were new (another instance may have won some). */
export async function recordSlaBreaches(
  db: Knex,
  rows: readonly SlaBreachRow[],
): Promise<SlaBreachRow[]> {
  const fresh: SlaBreachRow[] = [];
  for (const r of rows) {
    const out = (await db('sla_breaches')
      .insert(r)
      .onConflict(['event_id', 'rule_name'])
      .ignore()
      .returning('event_id')) as unknown[];
    if (out.length > 0) fresh.push(r);
  }
  return fresh;
}

export interface PendingBreaches {
  /** Events past an SLA that are still unprocessed. */
  events: number;
  byRule: Array<{ rule: string; events: number }>;
  oldestReceivedAt: number | undefined;
}

/** A portal's recorded breaches whose events are still unprocessed. */
export async function pendingSlaBreaches(db: Knex, memberId: string): Promise<PendingBreaches> {
  const rows = (await db('sla_breaches as b')
    .join('events as e', 'e.id', 'b.event_id')
    .where('b.member_id', memberId)
    .whereIn('e.status', BACKLOG_STATUSES)
    .select('b.rule_name')
    .countDistinct({ n: 'b.event_id' })
    .min({ t: 'b.received_at' })
    .groupBy('b.rule_name')
    .orderBy('b.rule_name')) as Array<{
    rule_name: string;
    n: number | string;
    t: number | string;
  }>;
  const distinct = (await db('sla_breaches as b')
    .join('events as e', 'e.id', 'b.event_id')
    .where('b.member_id', memberId)
    .whereIn('e.status', BACKLOG_STATUSES)
    .countDistinct({ n: 'b.event_id' })
    .first()) as { n: number | string } | undefined;
  const oldest = rows.length ? Math.min(...rows.map((r) => Number(r.t))) : undefined;
  return {
    events: Number(distinct?.n ?? 0),
    byRule: rows.map((r) => ({ rule: r.rule_name, events: Number(r.n) })),
    oldestReceivedAt: oldest,
  };
}

/**
 * SLA figures of one rule on one portal for events received since `since`: `total` counts the
 * decided ones (finished, or still pending past the deadline), `withinSla` those whose rule
 * was done and that were processed within `slaSeconds` of receipt.
 */
export async function slaCounts(
  db: Knex,
  portalId: number,
  rule: Pick<SlaRule, 'name' | 'slaSeconds'>,
  since: number,
  now: number,
): Promise<{ total: number; withinSla: number }> {
  const slaMs = rule.slaSeconds * 1000;
  const r = (await db('rule_matches as rm')
    .join('events as e', 'e.id', 'rm.event_id')
    .where('e.portal_id', portalId)
    .where('rm.rule_name', rule.name)
    .whereNot('rm.status', 'skipped')
    .where('e.received_at', '>=', since)
    .where((w) =>
      w
        .whereIn('e.status', ['processed', 'failed'])
        .orWhere((p) =>
          p.whereIn('e.status', BACKLOG_STATUSES).where('e.received_at', '<', now - slaMs),
        ),
    )
    .count({ total: '*' })
    .sum({
      within: db.raw(
        `case when e.status = 'processed' and rm.status = 'done' and e.processed_at - e.received_at <= ? then 1 else 0 end`,
        [slaMs],
      ),
    })
    .first()) as { total: number | string; within: number | string | null } | undefined;
  return { total: Number(r?.total ?? 0), withinSla: Number(r?.within ?? 0) };
}
