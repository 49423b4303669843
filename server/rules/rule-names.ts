import type { Knex } from 'knex';
import { ruleSuccess, type RuleFigures } from '../../db/stores/dashboard.js';
import { getSetting, putSetting } from '../../db/stores/settings.js';

/**
 * A rule's figures are kept by the name it ran under (rollups, action runs), so a rule
 * renamed in the builder or the JSON editor showed "no runs" on the rules page and its week
 * went on under a name no rule had. The names each rule had before are kept per portal
 * (settings key below: current name → former names, newest first), and the figures of a
 * former name count for the rule that has it now, unless a rule is called that again.
 */
export const RULE_NAMES_KEY = 'rule_names';

/** Former names kept per rule. */
const MAX_FORMER = 20;

export type FormerNames = Record<string, string[]>;

export async function formerNames(db: Knex, memberId: string): Promise<FormerNames> {
  return (await getSetting<FormerNames>(db, memberId, RULE_NAMES_KEY)) ?? {};
}

/** `renames`: [from, to] pairs of one save; a name that comes back is no longer former. */
export function withRenames(
  former: FormerNames,
  renames: ReadonlyArray<readonly [string, string]>,
): FormerNames {
  const out: FormerNames = { ...former };
  for (const [from, to] of renames) {
    if (!from || !to || from === to) continue;
    const chain = [from, ...(out[from] ?? []), ...(out[to] ?? [])].filter((n) => n !== to);
    delete out[from];
    out[to] = [...new Set(chain)].slice(0, MAX_FORMER);
  }
  return out;
}

/**
 * The former names after a save of the portal's map: its renames applied, and only the
 * rules the map has kept (a rule deleted takes its former names with it, so a new rule of
 * its name does not inherit its runs, and the row never outgrows the map).
 */
export function afterSave(
  former: FormerNames,
  renames: ReadonlyArray<readonly [string, string]>,
  current: readonly string[],
): FormerNames {
  const renamed = withRenames(former, renames);
  return Object.fromEntries(current.flatMap((n) => (renamed[n] ? [[n, renamed[n]]] : [])));
}

/** Records what a save of the portal's map did to its rules' names (written when it changed). */
export async function recordRuleRenames(
  db: Knex,
  memberId: string,
  renames: ReadonlyArray<readonly [string, string]>,
  current: readonly string[],
  now: Date,
): Promise<void> {
  const before = await formerNames(db, memberId);
  const after = afterSave(before, renames, current);
  if (JSON.stringify(after) === JSON.stringify(before)) return;
  await putSetting(db, memberId, RULE_NAMES_KEY, after, now);
}

/**
 * The figures with each former name's counted for the rule that has it now. A former name
 * that a rule of the map has again keeps its own figures; one no rule had keeps its row.
 */
export function foldFormerNames(
  figures: readonly RuleFigures[],
  current: readonly string[],
  former: FormerNames,
): RuleFigures[] {
  const now = new Set(current);
  const owner = new Map<string, string>();
  for (const name of current) {
    for (const old of former[name] ?? [])
      if (!now.has(old) && !owner.has(old)) owner.set(old, name);
  }
  const byRule = new Map<string, RuleFigures>();
  for (const f of figures) {
    const rule = owner.get(f.rule) ?? f.rule;
    const sum = byRule.get(rule) ?? { rule, succeeded: 0, failed: 0, other: 0 };
    sum.succeeded += f.succeeded;
    sum.failed += f.failed;
    sum.other += f.other;
    byRule.set(rule, sum);
  }
  return [...byRule.values()].sort((a, b) => a.rule.localeCompare(b.rule));
}

/** The portal's per-rule success since `since` (rollups), under the rules' current names. */
export async function currentRuleSuccess(
  db: Knex,
  portal: { id: number; member_id: string },
  current: readonly string[],
  since: number,
  now: number,
): Promise<RuleFigures[]> {
  const [figures, former] = await Promise.all([
    ruleSuccess(db, portal.id, since, now),
    formerNames(db, portal.member_id),
  ]);
  return foldFormerNames(figures, current, former);
}
