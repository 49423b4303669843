import { evaluateRules, type RuleInput } from './conditions.js';
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
  /** Only for matched rules. */
  steps?: DryRunStep[];
}

/**
 * `rules test`: which rules match the event and what their steps would send, without sending
 * anything. The processor loads the entity, related records and snapshot; this is the rest.
 */
export function dryRun(map: EventMap, input: RuleInput): DryRunRule[] {
  const ctx = buildTemplateContext(input);
  // All of it is held and shown at once: one budget for every step of every rule.
  const budget = renderBudget();
  return evaluateRules(map, input).map((m) => {
    if (!m.matched) return { rule: m.rule.name, matched: false, reason: m.reason };
    const steps = m.rule.actions.map((action, index): DryRunStep => {
      const base = { index, name: action.name, type: action.type };
      try {
        return { ...base, rendered: renderAction(action, ctx, { keepSteps: true, budget }) };
      } catch (e) {
        return { ...base, error: (e as Error).message };
      }
    });
    return { rule: m.rule.name, matched: true, reason: m.reason, steps };
  });
}
