import { evaluateRuleIn, evaluateRules, type RuleInput } from './conditions.js';
import { buildTemplateContext } from './context.js';
import type { Action, EventMap } from './model.js';
import { renderAction } from './render-action.js';
import { renderBudget } from './templates.js';

export interface DryRunStep {
  index: number;
  name: string | undefined;
  type: Action['type'];
  /** What the step would send; `{{steps.…}}` stay unfilled (earlier steps did not run). */
  rendered?: Action;
  /** Why it could not be rendered (e.g. a template naming a missing value). */
  error?: string;
}

export interface DryRunRule {
  rule: string;
  matched: boolean;
  reason: string;
  /**
   * Matched only with the record's values taken as just changed (`assumeChange`); `now` is
   * why an event of it would not match at this moment ("STAGE_ID was already "WON"").
   */
  assumed?: { now: string };
  /** Only for matched rules. */
  steps?: DryRunStep[];
}

/**
 * `rules test`: which rules match the event and what their steps would send, without sending
 * anything. The processor loads the entity, related records and snapshot; this is the rest.
 */
export function dryRun(
  map: EventMap,
  input: RuleInput,
  /**
   * A preview on a record chosen by hand: a rule that matches only on a change (`becomes`,
   * `changed`) never matched there, the record having been seen as it is (`was already`), so
   * its steps could not be shown. With this, such a rule is shown as matching with the
   * record's values taken as just changed, and why an event now would not match.
   */
  opts: { assumeChange?: boolean } = {},
): DryRunRule[] {
  const ctx = buildTemplateContext(input);
  // All of it is held and shown at once: one budget for every step of every rule.
  const budget = renderBudget();
  return evaluateRules(map, input).map((real) => {
    let m: typeof real & { assumed?: { now: string } } = real;
    if (!real.matched && opts.assumeChange) {
      const v = evaluateRuleIn(real.rule, input.event.name, ctx, input.previous, true);
      // Not even then: the condition that fails with the change taken as made is the one to
      // fix ("Delivery method is empty"), not the change itself ("Stage was already …").
      m = v.matched
        ? { ...real, ...v, assumed: { now: real.reason } }
        : { ...real, reason: v.reason };
    }
    if (!m.matched) return { rule: m.rule.name, matched: false, reason: m.reason };
    const steps = m.rule.actions.map((action, index): DryRunStep => {
      const base = { index, name: action.name, type: action.type };
      try {
        return { ...base, rendered: renderAction(action, ctx, { keepSteps: true, budget }) };
      } catch (e) {
        return { ...base, error: (e as Error).message };
      }
    });
    const assumed = m.assumed ? { assumed: m.assumed } : {};
    return { rule: m.rule.name, matched: true, reason: m.reason, ...assumed, steps };
  });
}
