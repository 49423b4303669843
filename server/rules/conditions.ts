import { buildTemplateContext, type ContextInput } from './context.js';
import { readField, sameValue, show } from './fields.js';
import type { Condition, Entity, EventInfo, EventMap, Rule, Snapshot } from './model.js';
import type { TemplateContext } from './templates.js';
import { checkBecomes, checkChanged, transitionOf } from './transitions.js';

/** What a rule is evaluated against. */
export interface RuleInput {
  event: EventInfo;
  /** The fresh read of the event's record (absent for delete events). */
  entity?: Entity;
  /** The entity's snapshot from its previous event; undefined on first sighting. */
  previous: Snapshot | undefined;
  /** Related records loaded for conditions/templates (`contact`, `company`). */
  related?: ContextInput['related'];
  portal?: ContextInput['portal'];
}

export interface RuleVerdict {
  matched: boolean;
  /** Why: the conditions that held, or the first that did not. */
  reason: string;
}

export interface RuleMatch extends RuleVerdict {
  rule: Rule;
  /** Position in the map. */
  index: number;
}

/**
 * One condition against the context; `previous` feeds `changed` / `becomes`. With
 * `assumeChange` (a preview on a record chosen by hand, not an event) the record's values
 * are taken as just changed: `becomes X` holds when the value is X, `changed` always.
 */
export function evaluateCondition(
  c: Condition,
  ctx: TemplateContext,
  previous: Snapshot | undefined,
  eventName: string,
  assumeChange = false,
): { holds: boolean; reason: string } {
  const now = readField(ctx, c.field);
  if (assumeChange && 'changed' in c) {
    return { holds: true, reason: `${c.field} is ${show(now)} (assumed just changed)` };
  }
  if (assumeChange && 'becomes' in c) {
    return sameValue(now, c.becomes)
      ? { holds: true, reason: `${c.field} is ${show(c.becomes)} (assumed just changed to it)` }
      : { holds: false, reason: `${c.field} is ${show(now)}, not ${show(c.becomes)}` };
  }
  if ('changed' in c) return checkChanged(c.field, transitionOf(c.field, ctx, previous), eventName);
  if ('becomes' in c) {
    return checkBecomes(c.field, c.becomes, transitionOf(c.field, ctx, previous), eventName);
  }
  if ('equals' in c) {
    return sameValue(now, c.equals)
      ? { holds: true, reason: `${c.field} is ${show(c.equals)}` }
      : { holds: false, reason: `${c.field} is ${show(now)}, not ${show(c.equals)}` };
  }
  const hit = c.in.some((v) => sameValue(now, v));
  return hit
    ? { holds: true, reason: `${c.field} is ${show(now)}, one of ${show(c.in)}` }
    : { holds: false, reason: `${c.field} is ${show(now)}, not one of ${show(c.in)}` };
}

/** Evaluates a rule on an already built context (used by the processor and dry run). */
export function evaluateRuleIn(
  rule: Rule,
  eventName: string,
  ctx: TemplateContext,
  previous: Snapshot | undefined,
  assumeChange = false,
): RuleVerdict {
  const name = eventName.toUpperCase();
  if (rule.enabled === false) return { matched: false, reason: 'rule is disabled' };
  if (!rule.on.includes(name)) {
    return { matched: false, reason: `not triggered by ${name} (on: ${rule.on.join(', ')})` };
  }
  const held: string[] = [];
  for (const c of rule.when ?? []) {
    const r = evaluateCondition(c, ctx, previous, name, assumeChange);
    if (!r.holds) return { matched: false, reason: r.reason };
    held.push(r.reason);
  }
  return { matched: true, reason: held.length ? held.join('; ') : `${name}, no conditions` };
}

/** Whether the rule matches this event, and why (all `when` conditions must hold). */
export function evaluateRule(rule: Rule, input: RuleInput): RuleVerdict {
  return evaluateRuleIn(rule, input.event.name, buildTemplateContext(input), input.previous);
}

/** Every rule's verdict, in map order. */
export function evaluateRules(map: EventMap, input: RuleInput): RuleMatch[] {
  const ctx = buildTemplateContext(input);
  return map.rules.map((rule, index) => ({
    rule,
    index,
    ...evaluateRuleIn(rule, input.event.name, ctx, input.previous),
  }));
}

/** The rules that match, with reasons, in map order. */
export function matchRules(map: EventMap, input: RuleInput): RuleMatch[] {
  return evaluateRules(map, input).filter((m) => m.matched);
}
