import { createHash } from 'node:crypto';
import type { Deps } from '../deps.js';
import { runAction, stepOutput, type Mailer } from '../actions/index.js';
import { toError } from '../lib/errors.js';
import { PausedError, PermanentError } from '../queue/errors.js';
import {
  createDestinations,
  destinationOf,
  restWaitMs,
  type Destinations,
} from '../queue/destinations.js';
import type { JobHandler } from '../queue/types.js';
import { evaluateRules, evaluateRuleIn } from '../rules/conditions.js';
import { buildTemplateContext, type StepOutput } from '../rules/context.js';
import type { EventInfo, EventMap, Rule, Snapshot } from '../rules/model.js';
import { relatedToLoad } from '../rules/needs.js';
import { renderAction } from '../rules/render-action.js';
import { openAction } from '../rules/secret-fields.js';
import { takeSnapshot, watchedFields } from '../rules/transitions.js';
import type { EventRow } from '../../db/stores/events.js';
import { dueEntityRefs } from '../../db/stores/jobs.js';
import { findPortalById, type PortalRow } from '../../db/stores/portals.js';
import {
  consumeOwnWrite,
  getSnapshot,
  insertRuleMatches,
  listActionRuns,
  listRuleMatches,
  markEvaluated,
  recordActionRun,
  recordOwnWrite,
  saveSnapshot,
  setRuleMatchStatus,
  type ActionRunRow,
} from '../../db/stores/processing.js';
import { effectiveMap } from '../../db/stores/rules.js';
import {
  createEntityReader,
  writtenEntity,
  type Entity,
  type EntityReader,
} from './entity-reader.js';

export interface ProcessorOptions {
  reader?: EntityReader;
  mailer?: Mailer;
  fetch?: typeof fetch;
  /** An event for an entity we wrote to within this window is our own write's echo. @default 10 min */
  ownWriteWindowMs?: number;
  /** How many of our own writes may chain (rule → write → event → rule …). @default 3 */
  maxChainDepth?: number;
  /** Concurrency caps and circuit breakers of the steps' destinations (server/queue/). */
  destinations?: Destinations;
  /**
   * An event whose entity must be read waits (giving its worker back, no attempt spent) when
   * the portal's REST budget would hold the read longer than this. @default 2 s
   */
  maxRestWaitMs?: number;
}

/** Job payload of a replay. */
export interface ProcessPayload {
  /** > 0 when a replay asked to run succeeded steps again. */
  generation?: number;
}

/** The step's idempotency key: stable per (event, rule, step[, rerun generation]). */
export function idempotencyKey(
  eventId: number,
  ruleName: string,
  step: number,
  generation = 0,
): string {
  const rule = createHash('sha256').update(ruleName).digest('hex').slice(0, 12);
  return `b24h-${eventId}-${rule}-${step}${generation ? `-r${generation}` : ''}`;
}

const isDelete = (event: string) => /DELETE(_\d+)?$/.test(event);

const parse = <T>(s: string | null, fallback: T): T => {
  if (!s) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
};

/**
 * `process_event`: loads the entity (Bitrix24 sends only its ID), decides once which rules
 * match (recorded with the snapshot they were judged against, so retries and replays resume
 * those rules rather than re-deciding), then runs each matched rule's steps in order, each
 * recorded under an idempotency key so a succeeded step never runs twice.
 */
export function createEventProcessor(deps: Deps, opts: ProcessorOptions = {}): JobHandler {
  const { db, logger, config, metrics } = deps;
  const reader = opts.reader ?? createEntityReader(deps);
  const window = opts.ownWriteWindowMs ?? 10 * 60_000;
  const maxDepth = opts.maxChainDepth ?? 3;
  const destinations =
    opts.destinations ??
    createDestinations(deps, { concurrency: config.worker.destinationConcurrency });
  const maxRestWaitMs = opts.maxRestWaitMs ?? 2000;
  const now = () => deps.clock.now().getTime();

  async function loadRelated(
    portal: PortalRow,
    rules: Rule[],
    entity: Entity | undefined,
    eventId: number,
  ) {
    const related: Record<string, Entity | undefined> = {};
    if (!entity) return related;
    for (const root of relatedToLoad(rules)) {
      const id = entity[`${root.toUpperCase()}_ID`] ?? entity[`${root}Id`];
      if (id === undefined || id === null || id === '' || id === '0' || id === 0) continue;
      const rec = await reader.read(portal, root, String(id), eventId);
      if (rec) related[root] = rec;
    }
    return related;
  }

  /** First sighting of this event: decide which rules match, record it with the snapshot. */
  async function evaluate(
    event: EventRow,
    portal: PortalRow,
    map: EventMap,
    info: EventInfo,
    entity: Entity | undefined,
  ) {
    const t = now();
    const key =
      event.entity_type && event.entity_id
        ? { portalId: portal.id, entityType: event.entity_type, entityId: event.entity_id }
        : undefined;
    const echo = key ? await consumeOwnWrite(db, key, t - window, event.id) : undefined;
    const depth = echo ? echo.depth + 1 : 0;
    const candidates = map.rules.filter((r) => r.enabled !== false && r.on.includes(event.event));
    const related = await loadRelated(portal, candidates, entity, event.id);
    const previous = key
      ? await getSnapshot(db, key.portalId, key.entityType, key.entityId)
      : undefined;
    const verdicts = evaluateRules(map, {
      event: info,
      entity,
      previous,
      related,
      portal: { domain: portal.domain, memberId: portal.member_id },
    });
    const matched = verdicts.filter((v) => v.matched);
    const guarded: Array<{ name: string; note: string }> = [];
    const keep = matched.filter((m) => {
      if (echo && m.rule.name === echo.rule_name) {
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
    const fields = watchedFields(map, event.event);
    await db.transaction(async (trx) => {
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
      if (key && fields.length > 0 && entity) {
        const ctx = buildTemplateContext({ event: info, entity, related });
        await saveSnapshot(trx, key, takeSnapshot(fields, ctx), event.id, t);
      }
      await markEvaluated(trx, event.id, t, depth);
    });
    return {
      guarded,
      unmatched: verdicts
        .filter((v) => !v.matched && v.rule.on.includes(event.event))
        .map((v) => `${v.rule.name}: ${v.reason}`),
    };
  }

  return async ({ job, event, attempt }) => {
    if (!event) throw new PermanentError('process_event job without an event');
    const portal = event.portal_id !== null ? await findPortalById(db, event.portal_id) : undefined;
    if (!portal || portal.status === 'uninstalled')
      return { eventStatus: 'skipped', note: 'portal is not installed' };
    const generation = parse<ProcessPayload>(job.payload, {}).generation ?? 0;
    const map = await effectiveMap(db, portal.member_id);
    const info: EventInfo = {
      name: event.event,
      id: event.id,
      memberId: portal.member_id,
      entityType: event.entity_type,
      entityId: event.entity_id,
      receivedAt: new Date(event.received_at).toISOString(),
    };
    const portalInfo = { domain: portal.domain, memberId: portal.member_id };

    let entity: Entity | undefined;
    if (event.entity_type && event.entity_id) {
      if (isDelete(event.event)) entity = { ID: event.entity_id };
      else {
        // Waiting is not working: a read the portal's budget would hold up gives the worker
        // back and comes again when the bucket has drained.
        const waitMs = restWaitMs(deps.bitrix.limiter, portal.member_id);
        if (waitMs > maxRestWaitMs)
          throw new PausedError(`waiting ${waitMs} ms for the portal's REST budget`, waitMs, {
            waitingFor: `rest:${portal.domain}`,
          });
        // Read ahead: this entity and those of the portal's other due events, in one batch.
        // A retry or a replay acts later than the first read: it must read afresh (the
        // stale-trigger guard depends on it), so a cached read does not count for it.
        const freshFor =
          attempt > 1 || event.evaluated_at !== null ? Number.MAX_SAFE_INTEGER : event.id;
        const ahead = await dueEntityRefs(db, portal.id, now(), 49);
        const self = { type: event.entity_type, id: event.entity_id };
        const readAhead =
          freshFor === event.id
            ? reader.prefetch(portal, [self, ...ahead], freshFor)
            : Promise.resolve();
        await readAhead.catch((e: unknown) => {
          // Reading ahead is an optimisation; the single read below reports real trouble.
          logger.debug({ err: (e as Error).message }, 'read-ahead batch failed');
        });
        const fresh = await reader.read(portal, self.type, self.id, freshFor);
        if (fresh === null)
          return {
            eventStatus: 'skipped',
            note: `${event.entity_type} ${event.entity_id} no longer exists`,
          };
        entity = fresh ?? undefined;
      }
    }

    let evaluation: Awaited<ReturnType<typeof evaluate>> | undefined;
    if (event.evaluated_at === null || event.evaluated_at === undefined) {
      evaluation = await evaluate(event, portal, map, info, entity);
    }
    const matches = await listRuleMatches(db, event.id);
    const active = matches.filter((m) => m.status !== 'skipped');
    if (active.length === 0) {
      const notes = [
        ...matches.map((m) => `${m.rule_name}: ${m.note ?? 'skipped'}`),
        ...(evaluation?.unmatched ?? []),
      ];
      return {
        eventStatus: 'skipped',
        note: notes.length
          ? `no rule to run (${notes.join('; ')})`.slice(0, 1000)
          : 'no rule matched',
      };
    }

    const runs = await listActionRuns(db, event.id);
    const notes: string[] = [];
    let ran = 0;
    for (const match of active) {
      const rule = map.rules.find((r) => r.name === match.rule_name);
      if (!rule) {
        notes.push(`${match.rule_name}: rule no longer in the map`);
        continue;
      }
      const mine = new Map<number, ActionRunRow>();
      for (const r of runs)
        if (r.rule_name === rule.name && r.generation === generation) mine.set(r.step_index, r);
      const related = await loadRelated(portal, [rule], entity, event.id);
      const previous = parse<Snapshot | undefined>(match.previous, undefined);

      // Stale-trigger guard: before the first step, the conditions must still hold on a fresh read.
      if (![...mine.values()].some((r) => r.status === 'succeeded')) {
        const ctx = buildTemplateContext({ event: info, entity, related, portal: portalInfo });
        const verdict = evaluateRuleIn(rule, event.event, ctx, previous);
        if (!verdict.matched) {
          await setRuleMatchStatus(
            db,
            event.id,
            rule.name,
            'skipped',
            `stale trigger: ${verdict.reason}`,
          );
          notes.push(`${rule.name}: stale trigger, ${verdict.reason}`);
          continue;
        }
      }

      const steps: Record<string, StepOutput> = {};
      for (const [i, action] of rule.actions.entries()) {
        const stepName = action.name ?? `step${i + 1}`;
        const prior = mine.get(i);
        const settled =
          prior &&
          (prior.status === 'succeeded' || (prior.status === 'failed' && action.continueOnError));
        if (settled) {
          if (prior.status === 'succeeded')
            steps[stepName] = parse<StepOutput>(prior.output, { response: null });
          continue;
        }
        const key = idempotencyKey(event.id, rule.name, i, generation);
        const startedAt = now();
        const base = {
          event_id: event.id,
          rule_name: rule.name,
          step_index: i,
          step_name: action.name ?? null,
          action_type: action.type,
          idempotency_key: key,
          started_at: startedAt,
          generation,
        };
        try {
          const ctx = buildTemplateContext({
            event: info,
            entity,
            related,
            steps,
            portal: portalInfo,
          });
          // Stored credentials are opened only here, right before the step is sent.
          const rendered = renderAction(
            openAction(action, deps.box, config.actions.secretEnv),
            ctx,
          );
          const result = await destinations.run(
            destinationOf(rendered, config, portal.domain),
            () =>
              runAction(action, rendered, {
                config,
                logger,
                idempotencyKey: key,
                bitrix: (method, params) => deps.bitrix.call(portal, method, params),
                mailer: opts.mailer,
                fetch: opts.fetch,
                guard: deps.httpGuard,
                clock: deps.clock,
              }),
          );
          const out = stepOutput(result);
          steps[stepName] = out;
          await recordActionRun(db, {
            ...base,
            status: 'succeeded',
            request_summary: JSON.stringify(result.request).slice(0, 4000),
            response_summary: JSON.stringify({
              status: result.response.status,
              ms: result.response.ms,
            }).slice(0, 1000),
            output: JSON.stringify(out).slice(0, 64_000),
            error: null,
            finished_at: now(),
          });
          metrics.actionRuns.inc({ type: action.type, outcome: 'succeeded' });
          if (rendered.type === 'bitrix') {
            const written = writtenEntity(rendered.method, rendered.params);
            if (written) {
              reader.invalidate(portal.id, written.type, written.id);
              await recordOwnWrite(db, {
                portal_id: portal.id,
                entity_type: written.type,
                entity_id: written.id,
                rule_name: rule.name,
                depth: event.chain_depth ?? 0,
                written_at: now(),
              });
            }
          }
        } catch (thrown) {
          // The destination is down or busy: the step did not run, so nothing is recorded.
          if (thrown instanceof PausedError && thrown.waitingFor !== undefined) throw thrown;
          const e = toError(thrown);
          await recordActionRun(db, {
            ...base,
            status: 'failed',
            request_summary: null,
            response_summary: null,
            output: null,
            error: e.message.slice(0, 2000),
            finished_at: now(),
          });
          metrics.actionRuns.inc({ type: action.type, outcome: 'failed' });
          if (action.continueOnError) {
            notes.push(`${rule.name}/${stepName} failed (continued): ${e.message}`);
            continue;
          }
          const err = thrown instanceof Error ? thrown : e;
          err.message = `${rule.name} / ${stepName}: ${err.message}`;
          throw err;
        }
      }
      await setRuleMatchStatus(db, event.id, rule.name, 'done', null);
      ran++;
    }
    if (ran === 0)
      return { eventStatus: 'skipped', note: notes.join('; ').slice(0, 1000) || 'nothing to run' };
    return {
      eventStatus: 'processed',
      note: notes.length ? notes.join('; ').slice(0, 1000) : undefined,
    };
  };
}
