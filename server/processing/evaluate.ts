import type { Knex } from 'knex';
import { isDeleteEvent } from '../intake/entity.js';
import { evaluateRules, type RuleMatch } from '../rules/conditions.js';
import { buildTemplateContext } from '../rules/context.js';
import { takeSnapshot, watchedFields } from '../rules/transitions.js';
import {
  consumeOwnWrite,
  getSnapshot,
  insertRuleMatches,
  markEvaluated,
  deleteSnapshot,
  saveSnapshot,
  setRuleMatchStatus,
} from '../../db/stores/processing.js';
import type { EventScope, ProcessContext } from './context.js';
import { loadRelated } from './read-entities.js';

export interface Evaluation {
  /** Matched rules the loop guard held back (recorded `skipped` with this note). */
  guarded: Array<{ name: string; note: string }>;
  /** `rule: reason` of each rule listening to the event whose conditions did not hold. */
  unmatched: string[];
  /** How many of our own writes chained to this event (0: a person's or another app's change). */
  depth: number;
  /**
   * No rule matched: the evaluation's writes (the snapshot, `evaluated_at`), for the job's
   * outcome to commit. Unset when they are committed already (a rule matched).
   */
  commit?: (trx: Knex) => Promise<void>;
}

/**
 * First sighting of this event: decide which rules match, record it with the snapshot they
 * were judged against, so retries and replays resume those rules rather than re-deciding.
 */
export async function evaluateEvent(ctx: ProcessContext, scope: EventScope): Promise<Evaluation> {
  const { db } = ctx.deps;
  const { event, portal, map, info, entity } = scope;
  const t = ctx.now();
  const key =
    event.entity_type && event.entity_id
      ? { portalId: portal.id, entityType: event.entity_type, entityId: event.entity_id }
      : undefined;
  // A retry after a failure below (a related read, say) or a replay finds the write this
  // event consumed already, however long ago it was made.
  const echo = key
    ? await consumeOwnWrite(
        db,
        key,
        { since: event.received_at - ctx.ownWriteWindowMs, until: event.received_at },
        event.id,
      )
    : undefined;
  const depth = echo ? echo.depth + 1 : 0;
  const candidates = map.rules.filter((r) => r.enabled !== false && r.on.includes(event.event));
  const related = await loadRelated(ctx, portal, candidates, entity, event);
  const previous = key
    ? await getSnapshot(db, key.portalId, key.entityType, key.entityId)
    : undefined;
  const verdicts = evaluateRules(map, {
    event: info,
    entity,
    previous,
    related,
    portal: scope.portalInfo,
  });
  const matched = verdicts.filter((v) => v.matched);
  const { keep, guarded } = guardLoops(matched, echo?.rule_name, depth, ctx.maxChainDepth);
  const fields = watchedFields(map, event.event);
  const record = async (trx: Knex) => {
    await insertRuleMatches(
      trx,
      [...keep, ...matched.filter((m) => !keep.includes(m))].map((m) => ({
        event_id: event.id,
        rule_name: m.rule.name,
        rule_index: m.index,
        reason: m.reason,
        previous: previous === undefined ? null : JSON.stringify(previous),
        sla_ms: m.rule.slaSeconds ? m.rule.slaSeconds * 1000 : null,
      })),
      t,
    );
    for (const g of guarded) await setRuleMatchStatus(trx, event.id, g.name, 'skipped', g.note);
    // Snapshots are kept while the record lives (retention ages them only after a year
    // unseen): its DELETE event, where bound, is where one goes.
    if (key && isDeleteEvent(event.event)) await deleteSnapshot(trx, key);
    else if (key && fields.length > 0 && entity) {
      const tctx = buildTemplateContext({ event: info, entity, related });
      await saveSnapshot(trx, key, takeSnapshot(fields, tctx), event.id, t);
    }
    await markEvaluated(trx, event.id, t, depth);
  };
  const unmatched = verdicts
    .filter((v) => !v.matched && v.rule.on.includes(event.event))
    .map((v) => `${v.rule.name}: ${v.reason}`);
  // Nothing matched: the event is finished as skipped right away, and a crash before that
  // only means deciding again on the same stored snapshot.
  if (matched.length === 0) return { guarded, unmatched, depth, commit: record };
  await db.transaction(record);
  return { guarded, unmatched, depth };
}

/**
 * The loop guard: a rule does not run on the echo of its own write, and no rule runs once
 * our own writes have chained more than `maxDepth` times.
 */
function guardLoops(
  matched: RuleMatch[],
  echoOf: string | undefined,
  depth: number,
  maxDepth: number,
): { keep: RuleMatch[]; guarded: Evaluation['guarded'] } {
  const guarded: Evaluation['guarded'] = [];
  const keep = matched.filter((m) => {
    if (echoOf !== undefined && m.rule.name === echoOf) {
      guarded.push({
        name: m.rule.name,
        note: `loop guard: this change was made by the rule itself`,
      });
      return false;
    }
    if (depth > maxDepth) {
      guarded.push({
        name: m.rule.name,
        note: `loop guard: ${depth} chained writes by our own rules (limit ${maxDepth})`,
      });
      return false;
    }
    return true;
  });
  return { keep, guarded };
}
