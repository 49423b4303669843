import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { runAction, stepOutput } from '../actions/index.js';
import { withoutValuesDeep } from '../actions/http-call.js';
import { portalStepChat } from '../../db/stores/alerts.js';
import { telegramChatGuard } from './telegram-chats.js';
import { toError } from '../lib/errors.js';
import { PausedError } from '../lib/retry-errors.js';
import { destinationOf } from '../queue/destinations.js';
import { stepBudgetOf } from '../queue/step-budget.js';
import { QuotaPause, takeChannelQuota } from './channel-quota.js';
import { evaluateRuleIn } from '../rules/conditions.js';
import { buildTemplateContext, type StepOutput } from '../rules/context.js';
import type { Action, Rule, Snapshot } from '../rules/model.js';
import { renderAction } from '../rules/render-action.js';
import { MAX_RENDERED_CHARS, renderBudget } from '../rules/templates.js';
import { checkEnvOrigins, inheritedTexts, openAction } from '../rules/secret-fields.js';
import {
  setRuleMatchStatus,
  type ActionRunRow,
  type RuleMatchRow,
} from '../../db/stores/processing.js';
import { parseStored, type EventScope, type ProcessContext } from './context.js';
import type { Entity } from './entity-reader.js';
import { loadRelated } from './read-entities.js';
import { noteOwnWrite, recordFailed, recordSucceeded } from './step-records.js';

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

/** One matched rule being run for one event. */
interface RuleRun {
  readonly rule: Rule;
  readonly related: Record<string, Entity | undefined>;
  /** This rule's earlier runs of each step (by step index), in the event's generation. */
  readonly prior: ReadonlyMap<number, ActionRunRow>;
  /** Outputs of the steps so far, by step name, for later steps' templates. */
  readonly steps: Record<string, StepOutput>;
  /** What the job's note reports. */
  readonly notes: string[];
}

/**
 * Runs the steps of one matched rule in order, each recorded under its idempotency key so a
 * succeeded step never runs twice. Returns false when the rule did not run: none of its
 * steps was tried yet and its conditions no longer hold on the fresh read (a stale trigger).
 */
export async function runRule(
  ctx: ProcessContext,
  scope: EventScope,
  rule: Rule,
  match: RuleMatchRow,
  runs: readonly ActionRunRow[],
  notes: string[],
): Promise<boolean> {
  const { db } = ctx.deps;
  const { event } = scope;
  const prior = new Map<number, ActionRunRow>();
  for (const r of runs)
    if (r.rule_name === rule.name && r.generation === scope.generation) prior.set(r.step_index, r);
  const related = await loadRelated(ctx, scope.portal, [rule], scope.entity, event);
  const previous = parseStored<Snapshot | undefined>(match.previous, undefined);

  // Stale-trigger guard: until a step has been tried, the conditions must still hold on a
  // fresh read (a deal that left WON while its event waited is not invoiced). Once one was
  // tried, the rule is carried out: the destination may have acted on it (a timeout), its
  // idempotency key makes the retry safe, and a deal that moved on after a failed step (an
  // admin fixed the cause and retried) still gets what its change was due.
  if (prior.size === 0) {
    const tctx = buildTemplateContext({
      event: scope.info,
      entity: scope.entity,
      related,
      portal: scope.portalInfo,
    });
    const verdict = evaluateRuleIn(rule, event.event, tctx, previous);
    if (!verdict.matched) {
      await setRuleMatchStatus(
        db,
        event.id,
        rule.name,
        'skipped',
        `stale trigger: ${verdict.reason}`,
      );
      notes.push(`${rule.name}: stale trigger, ${verdict.reason}`);
      return false;
    }
  }

  const run: RuleRun = { rule, related, prior, steps: {}, notes };
  const last = rule.actions.length - 1;
  let done = false;
  for (const [i, action] of rule.actions.entries()) {
    // Between two steps (of this rule or the one before): another portal may want the slot.
    await scope.turn.checkpoint();
    // The last step's success and the rule's `done` are one commit (each is an fsync on
    // the main thread).
    const finish =
      i === last
        ? (trx: Knex) =>
            setRuleMatchStatus(
              trx,
              event.id,
              rule.name,
              'done',
              null,
              ctx.deps.clock.now().getTime(),
            )
        : undefined;
    if (await runStep(ctx, scope, run, i, action, finish)) done = true;
  }
  if (!done) {
    await setRuleMatchStatus(db, event.id, rule.name, 'done', null, ctx.deps.clock.now().getTime());
  }
  return true;
}

/**
 * Step `i` of the rule, unless an earlier attempt settled it (succeeded, or failed with
 * `continueOnError`). A failure throws (the job retries) unless the step may continue.
 */
async function runStep(
  ctx: ProcessContext,
  scope: EventScope,
  run: RuleRun,
  i: number,
  action: Action,
  /** Written in the same transaction as the step's success; true when it was. */
  finish?: (trx: Knex) => Promise<void>,
): Promise<boolean> {
  const { deps } = ctx;
  const { event, portal } = scope;
  const stepName = action.name ?? `step${i + 1}`;
  const prior = run.prior.get(i);
  const settled =
    prior &&
    (prior.status === 'succeeded' || (prior.status === 'failed' && action.continueOnError));
  if (settled) {
    if (prior.status === 'succeeded')
      run.steps[stepName] = parseStored<StepOutput>(prior.output, { response: null });
    return false;
  }
  // A portal whose steps filled in more than its share of the main thread waits before the
  // next one (server/queue/step-budget.ts): nothing is recorded, no attempt spent.
  const budget = stepBudgetOf(deps);
  const wait = budget.waitMs(portal.id);
  if (wait > 0) {
    throw new PausedError(
      `waiting ${wait} ms: this portal's steps filled in more than ${budget.rate / 1024 / 1024} MB a second (PORTAL_STEP_MB_PER_SECOND)`,
      wait,
    );
  }
  scope.turn.stepRan();
  const key = idempotencyKey(event.id, run.rule.name, i, scope.generation);
  const base = {
    event_id: event.id,
    rule_name: run.rule.name,
    step_index: i,
    step_name: action.name ?? null,
    action_type: action.type,
    idempotency_key: key,
    started_at: ctx.now(),
    generation: scope.generation,
  };
  try {
    const tctx = buildTemplateContext({
      event: scope.info,
      entity: scope.entity,
      related: run.related,
      steps: run.steps,
      portal: scope.portalInfo,
    });
    // Stored credentials are opened only here, right before the step is sent.
    const filled = renderBudget();
    let rendered: Action;
    try {
      rendered = renderAction(openAction(action, deps.box, deps.config.actions.secretEnv), tctx, {
        budget: filled,
      });
    } finally {
      if (budget.spend(portal.id, MAX_RENDERED_CHARS - filled.left)) {
        deps.logger.warn(
          { portalId: portal.id, waitMs: budget.waitMs(portal.id) },
          "a portal's steps filled in more than PORTAL_STEP_MB_PER_SECOND: its jobs wait, the other portals' go on",
        );
      }
    }
    checkEnvOrigins(action, rendered, deps.config.actions.secretEnvOrigins);
    // The operator's paid channels: at most PORTAL_MESSAGES_PER_DAY a portal and day each.
    await takeChannelQuota(deps, portal, rendered);
    const telegramChat =
      rendered.type === 'telegram' ? await portalStepChat(deps.db, portal.member_id) : null;
    const result = await ctx.destinations.run(
      destinationOf(rendered, deps.config, portal),
      () =>
        runAction(action, rendered, {
          config: deps.config,
          logger: deps.logger,
          idempotencyKey: key,
          bitrix: (method, params) => deps.bitrix.call(portal, method, params),
          mailer: ctx.mailer,
          mailRoutes: deps.mailRoutes,
          fetch: ctx.fetch,
          guard: deps.httpGuard,
          clock: deps.clock,
          telegramChat,
          telegramChats:
            rendered.type === 'telegram'
              ? telegramChatGuard(deps, portal.id, ctx.fetch)
              : undefined,
        }),
      // A shared channel's failures count for the portal too: see server/queue/destinations.ts.
      { portalId: portal.id },
    );
    // The operator's credentials a default-map step lent it stay out of what later steps
    // read, should the operator's endpoint echo them (secret-fields.ts inheritedTexts).
    const lent = inheritedTexts(action, deps.box);
    if (lent.length) result.response.body = withoutValuesDeep(result.response.body, lent);
    const out = stepOutput(result);
    run.steps[stepName] = out;
    await deps.db.transaction(async (trx) => {
      await recordSucceeded(ctx, trx, base, result, out);
      if (rendered.type === 'bitrix')
        await noteOwnWrite(ctx, trx, scope, run.rule, rendered, out.response, base.idempotency_key);
      await finish?.(trx);
    });
    deps.metrics.actionRuns.inc({ type: base.action_type, outcome: 'succeeded' });
    return finish !== undefined;
  } catch (thrown) {
    // The destination is down or busy, or the portal's messages of the day are spent: the
    // step did not run, so nothing is recorded.
    if (
      thrown instanceof PausedError &&
      (thrown.waitingFor !== undefined || thrown instanceof QuotaPause)
    )
      throw thrown;
    const e = toError(thrown);
    await recordFailed(ctx, base, e);
    if (action.continueOnError) {
      run.notes.push(`${run.rule.name}/${stepName} failed (continued): ${e.message}`);
      return false;
    }
    const err = thrown instanceof Error ? thrown : e;
    err.message = `${run.rule.name} / ${stepName}: ${err.message}`;
    throw err;
  }
}
