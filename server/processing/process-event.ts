import type { Deps } from '../deps.js';
import { isDeleteEvent } from '../intake/entity.js';
import { PausedError, PermanentError } from '../lib/retry-errors.js';
import type { JobContext, JobHandler, JobResult } from '../queue/types.js';
import type { EventInfo } from '../rules/model.js';
import type { EventRow } from '../../db/stores/events.js';
import { findPortalById, type PortalRow } from '../../db/stores/portals.js';
import {
  deleteSnapshot,
  listActionRuns,
  listRuleMatches,
  type RuleMatchRow,
} from '../../db/stores/processing.js';
import { effectiveMap } from '../rules/map-store.js';
import {
  createProcessContext,
  parseStored,
  type EventScope,
  type ProcessContext,
  type ProcessorOptions,
} from './context.js';
import type { Entity } from './entity-reader.js';
import { evaluateEvent, type Evaluation } from './evaluate.js';
import { recordEventOwners } from './owners.js';
import { readActivityBindings, readEventEntity } from './read-entities.js';
import { runRule } from './run-steps.js';
import { createTurn } from './turn.js';

export type { ProcessorOptions } from './context.js';
export { idempotencyKey } from './run-steps.js';

/** Job payload of a replay. */
export interface ProcessPayload {
  /** > 0 when a replay asked to run succeeded steps again. */
  generation?: number;
}

type Outcome = JobResult;

/**
 * `process_event`: loads the entity (Bitrix24 sends only its ID), decides once which rules
 * match (recorded with the snapshot they were judged against, so retries and replays resume
 * those rules rather than re-deciding), then runs each matched rule's steps in order, each
 * recorded under an idempotency key so a succeeded step never runs twice.
 *
 * The parts: read-entities.ts (the entity and its related records), evaluate.ts (which rules
 * match, the loop guard), run-steps.ts (the stale-trigger guard and the steps) with
 * step-records.ts (what each step leaves behind), all over one ProcessContext (context.ts).
 */
export function createEventProcessor(deps: Deps, opts: ProcessorOptions = {}): JobHandler {
  const ctx = createProcessContext(deps, opts);
  return (job) => processEvent(ctx, job);
}

/** One `process_event` job. */
export async function processEvent(
  ctx: ProcessContext,
  { job, event, attempt, slotWanted }: JobContext,
): Promise<Outcome> {
  const { db } = ctx.deps;
  if (!event) throw new PermanentError('process_event job without an event');
  const portal = event.portal_id !== null ? await findPortalById(db, event.portal_id) : undefined;
  if (!portal || portal.status === 'uninstalled')
    return { eventStatus: 'skipped', note: 'portal is not installed' };
  const generation = parseStored<ProcessPayload>(job.payload, {}).generation ?? 0;
  const map = await effectiveMap(db, portal.member_id);
  const info: EventInfo = {
    name: event.event,
    id: event.id,
    memberId: portal.member_id,
    entityType: event.entity_type,
    entityId: event.entity_id,
    receivedAt: new Date(event.received_at).toISOString(),
  };
  // A job that gave its slot back goes on with the record its first steps saw.
  const kept = ctx.kept.take(job.id, event.id);
  const entity = kept ? kept.entity : await readOwnedEntity(ctx, event, portal, attempt);
  if (entity === null) {
    // Gone from the portal: nothing will be compared with its snapshot again. Most portals
    // bind no DELETE event, so this is where a deleted record's snapshot usually goes.
    if (event.entity_type && event.entity_id) {
      await deleteSnapshot(db, {
        portalId: portal.id,
        entityType: event.entity_type,
        entityId: event.entity_id,
      });
    }
    return {
      eventStatus: 'skipped',
      note: `${event.entity_type} ${event.entity_id} no longer exists`,
    };
  }
  const portalInfo = { domain: portal.domain, memberId: portal.member_id };
  const turn = createTurn(ctx.kept, job, event.id, entity, slotWanted);
  let scope: EventScope = { event, portal, map, info, portalInfo, entity, generation, turn };

  let evaluation: Evaluation | undefined;
  if (event.evaluated_at === null || event.evaluated_at === undefined) {
    evaluation = await evaluateEvent(ctx, scope);
    // No rule matched (so no match is stored): skipped, with the evaluation's writes.
    if (evaluation.commit) return { ...nothingToRun([], evaluation), commit: evaluation.commit };
    // The chain depth just decided: the writes this event's steps make carry it on, so the
    // loop guard sees a chain of our own writes grow (the row read above still says 0).
    scope = { ...scope, event: { ...event, chain_depth: evaluation.depth } };
  }
  const matches = await listRuleMatches(db, event.id);
  const active = matches.filter((m) => m.status !== 'skipped');
  if (active.length === 0) return nothingToRun(matches, evaluation);
  return runMatches(ctx, scope, active);
}

/**
 * The event's record, read now, and the event linked to the records it belongs to (the deal
 * a call was made in) on its first evaluation. A read that fails links it as a record gone
 * would be, by the record's last read event, so the deal's tab shows the failure too.
 */
async function readOwnedEntity(
  ctx: ProcessContext,
  event: EventRow,
  portal: PortalRow,
  attempt: number,
): Promise<Entity | null | undefined> {
  const { db } = ctx.deps;
  const first = event.evaluated_at === null || event.evaluated_at === undefined;
  let entity: Entity | null | undefined;
  try {
    entity = await readEventEntity(ctx, event, portal, attempt);
  } catch (e) {
    // Waiting for the portal's budget is no failure: the job comes back and reads then.
    // The read's error is the one to report: a link that fails too is left for the retry.
    if (first && !(e instanceof PausedError)) {
      await recordEventOwners(db, event, null).catch(() => undefined);
    }
    throw e;
  }
  if (first) {
    const bound =
      event.entity_type === 'activity' && entity && !isDeleteEvent(event.event)
        ? await readActivityBindings(ctx, event, portal)
        : undefined;
    await recordEventOwners(db, event, entity, bound);
  }
  return entity;
}

/** Every match was skipped (or none was made): why, for the event's note. */
function nothingToRun(matches: RuleMatchRow[], evaluation: Evaluation | undefined): Outcome {
  const notes = [
    ...matches.map((m) => `${m.rule_name}: ${m.note ?? 'skipped'}`),
    ...(evaluation?.unmatched ?? []),
  ];
  return {
    eventStatus: 'skipped',
    note: notes.length ? `no rule to run (${notes.join('; ')})`.slice(0, 1000) : 'no rule matched',
  };
}

/** Runs each active match's rule in turn; `processed` when at least one ran. */
async function runMatches(
  ctx: ProcessContext,
  scope: EventScope,
  active: RuleMatchRow[],
): Promise<Outcome> {
  const runs = await listActionRuns(ctx.deps.db, scope.event.id);
  const notes: string[] = [];
  let ran = 0;
  for (const match of active) {
    const rule = scope.map.rules.find((r) => r.name === match.rule_name);
    if (!rule) {
      notes.push(`${match.rule_name}: rule no longer in the map`);
      continue;
    }
    if (await runRule(ctx, scope, rule, match, runs, notes)) ran++;
  }
  if (ran === 0)
    return { eventStatus: 'skipped', note: notes.join('; ').slice(0, 1000) || 'nothing to run' };
  return {
    eventStatus: 'processed',
    note: notes.length ? notes.join('; ').slice(0, 1000) : undefined,
  };
}
