import type { Knex } from 'knex';
import { changeActionRun, changeEvents } from './rollups.js';

export interface RuleMatchRow {
  id: number;
  event_id: number;
  rule_name: string;
  rule_index: number;
  reason: string | null;
  previous: string | null;
  status: 'matched' | 'skipped' | 'done';
  note: string | null;
}

export interface ActionRunRow {
  id: number;
  event_id: number;
  rule_name: string;
  step_index: number;
  step_name: string | null;
  action_type: string;
  idempotency_key: string;
  status: 'running' | 'succeeded' | 'failed' | 'skipped';
  attempts: number;
  request_summary: string | null;
  response_summary: string | null;
  output: string | null;
  error: string | null;
  started_at: number;
  finished_at: number | null;
  generation: number;
}

export async function getSnapshot(
  db: Knex,
  portalId: number,
  entityType: string,
  entityId: string,
): Promise<Record<string, unknown> | undefined> {
  const row = (await db('entity_snapshots')
    .where({ portal_id: portalId, entity_type: entityType, entity_id: entityId })
    .first('fields')) as { fields: string } | undefined;
  return row ? (JSON.parse(row.fields) as Record<string, unknown>) : undefined;
}

/** Merges `fields` into the entity's snapshot. */
export async function saveSnapshot(
  db: Knex,
  key: { portalId: number; entityType: string; entityId: string },
  fields: Record<string, unknown>,
  eventId: number | null,
  now: number,
): Promise<void> {
  const prev = (await getSnapshot(db, key.portalId, key.entityType, key.entityId)) ?? {};
  await db('entity_snapshots')
    .insert({
      portal_id: key.portalId,
      entity_type: key.entityType,
      entity_id: key.entityId,
      fields: JSON.stringify({ ...prev, ...fields }),
      event_id: eventId,
      updated_at: now,
    })
    .onConflict(['portal_id', 'entity_type', 'entity_id'])
    .merge(['fields', 'event_id', 'updated_at']);
}

/** Forgets a record's snapshot (its DELETE event: nothing will be compared with it again). */
export async function deleteSnapshot(
  db: Knex,
  key: { portalId: number; entityType: string; entityId: string },
): Promise<number> {
  return db('entity_snapshots')
    .where({ portal_id: key.portalId, entity_type: key.entityType, entity_id: key.entityId })
    .delete();
}

export async function listRuleMatches(db: Knex, eventId: number): Promise<RuleMatchRow[]> {
  return (await db('rule_matches')
    .where({ event_id: eventId })
    .orderBy('rule_index')) as RuleMatchRow[];
}

/** A rule match's SLA figures live in the rollups, so it changes through `changeEvents`. */
export async function insertRuleMatches(
  db: Knex,
  rows: Array<Omit<RuleMatchRow, 'id' | 'status' | 'note'> & { sla_ms?: number | null }>,
  now: number,
): Promise<void> {
  if (rows.length === 0) return;
  const ids = [...new Set(rows.map((r) => r.event_id))];
  await changeEvents(db, ids, (trx) =>
    trx('rule_matches').insert(rows.map((r) => ({ ...r, status: 'matched', created_at: now }))),
  );
}

/**
 * A rule match's new status; `done` also keeps when the rule was first done (`now`), which
 * its SLA is judged by (migration 0035).
 */
export async function setRuleMatchStatus(
  db: Knex,
  eventId: number,
  ruleName: string,
  status: RuleMatchRow['status'],
  note: string | null,
  now?: number,
): Promise<void> {
  await changeEvents(db, [eventId], (trx) =>
    trx('rule_matches')
      .where({ event_id: eventId, rule_name: ruleName })
      .update({
        status,
        note,
        ...(status === 'done' && now !== undefined
          ? { done_at: trx.raw('coalesce(done_at, ?)', [now]) }
          : {}),
      }),
  );
}

export async function markEvaluated(
  db: Knex,
  eventId: number,
  now: number,
  chainDepth: number,
): Promise<void> {
  await db('events').where({ id: eventId }).update({ evaluated_at: now, chain_depth: chainDepth });
}

export async function listActionRuns(db: Knex, eventId: number): Promise<ActionRunRow[]> {
  const rows = (await db('action_runs').where({ event_id: eventId }).orderBy('id')) as Record<
    string,
    unknown
  >[];
  return rows.map((r) => ({
    ...(r as unknown as ActionRunRow),
    id: Number(r.id),
    event_id: Number(r.event_id),
    started_at: Number(r.started_at),
    finished_at: r.finished_at === null ? null : Number(r.finished_at),
  }));
}

export async function getActionRun(db: Knex, key: string): Promise<ActionRunRow | undefined> {
  return (await db('action_runs').where({ idempotency_key: key }).first()) as
    ActionRunRow | undefined;
}

/** Records a step's outcome under its idempotency key (one row per key, attempts counted). */
export async function recordActionRun(
  db: Knex,
  row: Omit<ActionRunRow, 'id' | 'attempts'>,
): Promise<void> {
  await changeActionRun(db, row.event_id, row.idempotency_key, async (trx) => {
    const existing = await trx('action_runs')
      .where({ idempotency_key: row.idempotency_key })
      .first('id');
    if (existing) {
      await trx('action_runs')
        .where({ id: existing.id })
        .update({ ...row, attempts: trx.raw('attempts + 1') });
    } else {
      await trx('action_runs').insert({ ...row, attempts: 1 });
    }
  });
}

export async function recordOwnWrite(
  db: Knex,
  row: {
    portal_id: number;
    entity_type: string;
    entity_id: string;
    rule_name: string;
    depth: number;
    written_at: number;
  },
): Promise<void> {
  await db('own_writes').insert(row);
}

/**
 * The own write this event is the echo of, marked consumed by `eventId`: the one it consumed
 * already (a retry after a failed evaluation, a replay), else the oldest unconsumed write to
 * the entity in `window` (made before the event was received: a write made after it is not
 * what it echoes). Consumed at once, in a commit of its own, so that an echo whose
 * processing then fails for good does not pass for the echo of a later, genuine change.
 */
export async function consumeOwnWrite(
  db: Knex,
  key: { portalId: number; entityType: string; entityId: string },
  /** The window the write was made in: an echo arrives after its write. */
  window: { since: number; until: number },
  eventId: number,
): Promise<{ rule_name: string; depth: number } | undefined> {
  const ofEntity = () =>
    db('own_writes').where({
      portal_id: key.portalId,
      entity_type: key.entityType,
      entity_id: key.entityId,
    });
  type Row = { id: number | string; rule_name: string; depth: number | string };
  const found = (row: Row) => ({ rule_name: row.rule_name, depth: Number(row.depth) });
  const mine = (await ofEntity()
    .where({ consumed_by_event_id: eventId })
    .first('id', 'rule_name', 'depth')) as Row | undefined;
  if (mine) return found(mine);
  for (let tries = 0; tries < 3; tries++) {
    const row = (await ofEntity()
      .whereNull('consumed_by_event_id')
      .whereBetween('written_at', [window.since, window.until])
      .orderBy('written_at', 'asc')
      .first('id', 'rule_name', 'depth')) as Row | undefined;
    if (!row) return undefined;
    const taken = await db('own_writes')
      .where({ id: row.id })
      .whereNull('consumed_by_event_id')
      .update({ consumed_by_event_id: eventId });
    // Another event of the entity took it in between (ids committed out of order on
    // PostgreSQL): look again.
    if (Number(taken) === 1) return found(row);
  }
  return undefined;
}
