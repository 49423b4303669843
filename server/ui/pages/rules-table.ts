import type { RuleFigures } from '../../../db/stores/dashboard.js';
import type { MapWarning } from '../../rules/check-map.js';
import {
  describeConditions,
  describeStep,
  type MapWords,
  type Phrase,
  type StageNames,
} from '../../rules/describe.js';
import type { PortalMetadata } from '../../rules/metadata.js';
import type { ActionType, EventMap } from '../../rules/model.js';

/** One row of the map page's table. */
export interface RuleRow {
  /** Position in the map (rules run in this order). */
  index: number;
  name: string;
  on: string[];
  when: Phrase[];
  steps: Array<{ type: ActionType; name?: string; where: Phrase }>;
  slaSeconds?: number;
  enabled: boolean;
  /** Action steps started in the last 7 days (rollups) and how many succeeded. */
  runs: { succeeded: number; total: number };
  /** The map-check warnings that name this rule. */
  warnings: MapWarning[];
}

/**
 * The table of a map (credentials already masked): each rule in words with its figures and
 * the warnings that name it. Warnings that name no rule of the table come back as `general`,
 * for above the table.
 */
export function ruleRows(
  map: EventMap,
  figures: readonly RuleFigures[],
  warnings: readonly MapWarning[],
  words: MapWords,
  stages?: StageNames,
): { rows: RuleRow[]; general: MapWarning[] } {
  const byRule = new Map(figures.map((f) => [f.rule, f]));
  const names = new Set(map.rules.map((r) => r.name));
  // Each rule's warnings by its name: one pass, not the warnings read again for every rule.
  const warnedOf = new Map<string, MapWarning[]>();
  for (const w of warnings) {
    for (const n of new Set(w.rules)) {
      const list = warnedOf.get(n);
      if (list) list.push(w);
      else warnedOf.set(n, [w]);
    }
  }
  const rows = map.rules.map((rule, index): RuleRow => {
    const f = byRule.get(rule.name);
    return {
      index,
      name: rule.name,
      on: rule.on,
      when: describeConditions(rule, words, stages),
      steps: rule.actions.map((a) => ({
        type: a.type,
        ...(a.name ? { name: a.name } : {}),
        where: describeStep(a, words, rule),
      })),
      ...(rule.slaSeconds !== undefined ? { slaSeconds: rule.slaSeconds } : {}),
      enabled: rule.enabled !== false,
      runs: { succeeded: f?.succeeded ?? 0, total: f ? f.succeeded + f.failed + f.other : 0 },
      warnings: warnedOf.get(rule.name) ?? [],
    };
  });
  const general = warnings.filter((w) => !w.rules.some((n) => names.has(n)));
  return { rows, general };
}

/**
 * Stage names from the portal's metadata: a deal's `C1:WON` → "Deal successful" in pipeline
 * "Wholesale" (the pipeline only where the portal has more than one); a lead's `CONVERTED`
 * → its name in the status list STATUS; a quote's `APPROVED` and an old invoice's `P` → their
 * names in QUOTE_STATUS and INVOICE_STATUS.
 */
export function stageNames(meta: PortalMetadata): StageNames {
  const pipelines = new Map(meta.categories.map((c) => [c.id, c]));
  const stages = new Map(meta.stages.map((s) => [s.id, s]));
  const lists = {
    lead: new Map(meta.leadStages.map((s) => [s.id, s])),
    quote: new Map(meta.quoteStatuses.map((s) => [s.id, s])),
    invoice: new Map(meta.invoiceStatuses.map((s) => [s.id, s])),
  };
  return (code, record = 'deal') => {
    if (record !== 'deal') {
      const status = lists[record].get(code);
      return status ? { name: status.name, inDefault: true } : undefined;
    }
    const s = stages.get(code);
    if (!s) return undefined;
    const category = pipelines.get(s.categoryId);
    const inDefault = category?.isDefault ?? s.categoryId === 0;
    const pipeline = meta.categories.length > 1 ? category?.name : undefined;
    return pipeline ? { name: s.name, pipeline, inDefault } : { name: s.name, inDefault };
  };
}

/** A change of the map page: turn a rule on or off, move it one place, or delete it. */
export type MapChange =
  | { kind: 'toggle'; name: string; enabled: boolean }
  | { kind: 'move'; name: string; at: number; dir: 'up' | 'down' }
  | { kind: 'delete'; name: string; at: number };

/** Why a change was not made: no such rule, or the page showed an older order. */
export type ChangeRefusal = 'map.noRule' | 'map.stale';

/**
 * Applies a change to a copy of the map. Toggling is idempotent (the form says the state it
 * wants); a move or a deletion names where the page showed the rule, so a repeated or stale
 * click changes nothing (a deleted rule is no longer found). Returns the new map and the
 * rule's new position (for a deletion, the row that took its place, or the last).
 */
export function changeMap(
  map: EventMap,
  change: MapChange,
): { ok: true; map: EventMap; index: number } | { ok: false; reason: ChangeRefusal } {
  const out = structuredClone(map);
  const index = out.rules.findIndex((r) => r.name === change.name);
  const rule = out.rules[index];
  if (!rule) return { ok: false, reason: 'map.noRule' };
  if (change.kind === 'toggle') {
    // `enabled` defaults to true: an enabled rule carries no key, as a rule written by hand.
    if (change.enabled) delete rule.enabled;
    else rule.enabled = false;
    return { ok: true, map: out, index };
  }
  if (index !== change.at) return { ok: false, reason: 'map.stale' };
  if (change.kind === 'delete') {
    out.rules.splice(index, 1);
    return { ok: true, map: out, index: Math.max(0, Math.min(index, out.rules.length - 1)) };
  }
  const to = change.dir === 'up' ? index - 1 : index + 1;
  if (to < 0 || to >= out.rules.length) return { ok: true, map: out, index };
  out.rules.splice(index, 1);
  out.rules.splice(to, 0, rule);
  return { ok: true, map: out, index: to };
}
