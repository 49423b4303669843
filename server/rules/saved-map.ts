import type { Knex } from 'knex';
import type { Config } from '../config.js';
import type { Clock } from '../lib/clock.js';
import type { SecretBox } from '../lib/crypto.js';
import { getRuleMap, listRuleMaps, saveRuleMap, saveRuleMapInScope } from './map-store.js';
import { recordRuleRenames } from './rule-names.js';
import type { Action, EventMap } from './model.js';
import { isSealed, markInherited, sealMap, type SealResult } from './secret-fields.js';
import { DEFAULT_SCOPE } from '../../db/stores/settings.js';
import type { Logger } from '../lib/logger.js';

/** What saving a map needs: the database, the token key, ACTION_SECRET_ENV, the time. */
export interface MapSaver {
  db: Knex;
  box: SecretBox;
  config: Pick<Config, 'actions'>;
  clock: Clock;
}

/**
 * `map` with its rule `from` named `to`: a rule renamed in the builder keeps the credentials
 * stored for it (they are found by rule name). Unchanged when `to` is taken or `from` absent.
 */
export function withRenamedRule(
  map: EventMap | undefined,
  from: string,
  to: string,
): EventMap | undefined {
  if (!map || !from || from === to || map.rules.some((r) => r.name === to)) return map;
  return { ...map, rules: map.rules.map((r) => (r.name === from ? { ...r, name: to } : r)) };
}

/**
 * `map` with the steps of its rule `rule` as the builder's form now has them: step `i` of the
 * form was stored as `origins[i]` (its name, or `#n` for the unnamed step at index n; null for
 * a step new in the form), and is now named `names[i]`. Each stored step is put at its form
 * step's place under its form step's name, so a step renamed, unnamed or moved in the form
 * keeps the credentials stored for it (they are found by rule and step name, or `#index`).
 * A step new in the form finds none (a stand-in without credentials holds its place), nor
 * does one given the name of a step the form removed. Unchanged when the form sent no
 * origins (or not one per step), or named two steps alike.
 */
export function withRenamedSteps(
  map: EventMap | undefined,
  rule: string,
  origins: readonly unknown[],
  names: readonly (string | undefined)[],
): EventMap | undefined {
  const at = map ? map.rules.findIndex((r) => r.name === rule) : -1;
  if (!map || at < 0 || origins.length !== names.length) return map;
  const named = names.filter((n) => n !== undefined);
  if (new Set(named).size !== named.length) return map;
  const stored = new Map(map.rules[at]!.actions.map((a, i) => [a.name ?? `#${i}`, a]));
  const taken = new Set<string>();
  const actions = names.map((name, i): Action => {
    const from = origins[i];
    const a = typeof from === 'string' && !taken.has(from) ? stored.get(from) : undefined;
    if (!a) return { type: 'sms', to: '', text: '' };
    taken.add(from as string);
    const { name: _old, ...rest } = a;
    return (name === undefined ? rest : { ...rest, name }) as Action;
  });
  const rules = [...map.rules];
  rules[at] = { ...map.rules[at]!, actions };
  return { ...map, rules };
}

/**
 * `map` with the headers of the steps of its rule `rule` named as the builder's form now
 * names them: `renames[i]` maps a header of form step `i` (whose key in the map is
 * `keys[i]`: its name, or `#n`) to the header it was stored as. A header renamed in the form
 * keeps the credential stored for it (found by rule, step and header name); a stored header
 * whose name a renamed one took, and that the form no longer holds, is dropped for this save.
 */
export function withRenamedHeaders(
  map: EventMap | undefined,
  rule: string,
  keys: readonly string[],
  renames: readonly unknown[],
): EventMap | undefined {
  const at = map ? map.rules.findIndex((r) => r.name === rule) : -1;
  if (!map || at < 0) return map;
  const actions = [...map.rules[at]!.actions];
  let changed = false;
  renames.forEach((pairs, i) => {
    if (typeof pairs !== 'object' || pairs === null || Array.isArray(pairs)) return;
    const moves = Object.entries(pairs as Record<string, unknown>).filter(
      (e): e is [string, string] => typeof e[1] === 'string' && e[1] !== e[0],
    );
    const j = actions.findIndex((a, n) => (a.name ?? `#${n}`) === keys[i]);
    const step = actions[j];
    if (moves.length === 0 || step?.type !== 'http' || !step.headers) return;
    const taken = new Set(moves.map(([to]) => to.toLowerCase()));
    const headers: Record<string, (typeof step.headers)[string]> = {};
    for (const [name, value] of Object.entries(step.headers)) {
      // The operator's credential (taken over from the default map) keeps its whole request.
      const own = !isSealed(value) || !value.$inherited;
      const to = own ? moves.filter(([, from]) => from.toLowerCase() === name.toLowerCase()) : [];
      for (const [n] of to) headers[n] = value;
      if (to.length === 0 && !taken.has(name.toLowerCase())) headers[name] = value;
    }
    actions[j] = { ...step, headers };
    changed = true;
  });
  if (!changed) return map;
  const rules = [...map.rules];
  rules[at] = { ...map.rules[at]!, actions };
  return { ...map, rules };
}

/**
 * `stored` with the rules that `map` renamed in place named as `map` names them: the rule at
 * the same position whose stored name no rule of `map` has any more and whose new name no
 * stored rule had. Its steps' credentials are then found under the new name (a step that
 * sends elsewhere still needs its secret typed again: secret-fields.ts).
 */
function withRulesRenamedInPlace(
  stored: EventMap | undefined,
  map: EventMap,
): EventMap | undefined {
  let out: EventMap | undefined = stored;
  for (const [from, to] of rulesRenamedInPlace(stored, map)) out = withRenamedRule(out, from, to);
  return out;
}

/** The [from, to] names of the rules `map` renamed in place (withRulesRenamedInPlace). */
function rulesRenamedInPlace(stored: EventMap | undefined, map: EventMap): Array<[string, string]> {
  if (!stored) return [];
  const newNames = new Set(map.rules.map((r) => r.name));
  const oldNames = new Set(stored.rules.map((r) => r.name));
  return map.rules.flatMap((rule, i): Array<[string, string]> => {
    const was = stored.rules[i];
    if (!was || was.name === rule.name || newNames.has(was.name) || oldNames.has(rule.name)) {
      return [];
    }
    return [[was.name, rule.name]];
  });
}

/**
 * `stored` with the steps that `map` renamed in place named as `map` names them, for a map
 * edited as a whole (the JSON editor): in a rule of the same name (or renamed in place:
 * withRulesRenamedInPlace), the step at the same
 * position, of the same type, whose stored name no step of the rule has any more and whose new
 * name no stored step had. Any other step is matched by its name as before. In a step, a
 * header renamed is the one stored header gone and the one new, when there is one each.
 */
export function withStepsRenamedInPlace(
  stored: EventMap | undefined,
  map: EventMap,
  /** Whether headers may be renamed: not in the operator's default map. */
  renameHeaders = true,
): EventMap | undefined {
  let out = withRulesRenamedInPlace(stored, map);
  for (const rule of map.rules) {
    const before = out?.rules.find((r) => r.name === rule.name);
    if (!before) continue;
    const oldNames = before.actions.map((a) => a.name);
    const newNames = rule.actions.map((a) => a.name);
    const renamedFrom = rule.actions.map((a, i) => {
      const was = before.actions[i];
      if (!was || was.type !== a.type || was.name === a.name) return null;
      if (newNames.includes(was.name) || oldNames.includes(a.name)) return null;
      return was.name ?? `#${i}`;
    });
    // Every other step is found as before, under its own name (or place): withRenamedSteps
    // gives a step without an origin nothing.
    const origins = renamedFrom.map((o, i) => o ?? rule.actions[i]!.name ?? `#${i}`);
    if (renamedFrom.some((o) => o !== null)) {
      out = withRenamedSteps(out, rule.name, origins, newNames);
    }
    // A header renamed in a step: the one header gone and the one new, when there is one each.
    const stepsNow = out?.rules.find((r) => r.name === rule.name)?.actions ?? [];
    const keys = rule.actions.map((a, i) => a.name ?? `#${i}`);
    const moved = rule.actions.map((a, i) => {
      const was = stepsNow.find((s, n) => (s.name ?? `#${n}`) === keys[i]);
      if (a.type !== 'http' || was?.type !== 'http') return null;
      const have = (h: object | undefined, name: string) =>
        Object.keys(h ?? {}).some((k) => k.toLowerCase() === name.toLowerCase());
      const gone = Object.keys(was.headers ?? {}).filter((n) => !have(a.headers, n));
      const added = Object.keys(a.headers ?? {}).filter((n) => !have(was.headers, n));
      return gone.length === 1 && added.length === 1 ? { [added[0]!]: gone[0]! } : null;
    });
    if (renameHeaders) out = withRenamedHeaders(out, rule.name, keys, moved);
  }
  return out;
}

/**
 * Saves a validated map as the portal's own (`memberId`) or the default, its credentials
 * encrypted (secret-fields.ts). A masked credential keeps what the map shown in that place
 * held: the portal's own map, or the default it used until now.
 */
export async function saveMapSealed(
  deps: MapSaver,
  memberId: string | undefined,
  map: EventMap,
  opts: {
    renamed?: {
      from: string;
      to: string;
      steps?: readonly unknown[];
      /** Per step of the form, its renamed headers: `{now: storedAs}`. */
      headers?: readonly unknown[];
    };
    /** A map edited as a whole: steps renamed in place keep their credentials. */
    inPlace?: boolean;
    /** Checked and sealed as a save would be, and not stored (`rules import --dry-run`). */
    dryRun?: boolean;
  } = {},
): Promise<SealResult> {
  const own = await getRuleMap(deps.db, memberId);
  const fromDefault = own === undefined && memberId !== undefined;
  const stored = fromDefault ? await getRuleMap(deps.db) : own;
  const r = opts.renamed;
  const actions = r ? (map.rules.find((x) => x.name === r.to)?.actions ?? []) : [];
  const previous = r
    ? withRenamedHeaders(
        withRenamedSteps(
          withRenamedRule(stored, r.from, r.to),
          r.to,
          r.steps ?? [],
          actions.map((a) => a.name),
        ),
        r.to,
        actions.map((a, i) => a.name ?? `#${i}`),
        // The operator's default map: its credentials keep their whole request.
        fromDefault ? [] : (r.headers ?? []),
      )
    : opts.inPlace
      ? withStepsRenamedInPlace(stored, map, !fromDefault)
      : stored;
  const sealed = sealMap(map, {
    box: deps.box,
    previous,
    previousIsDefault: fromDefault,
    envNames: deps.config.actions.secretEnv,
  });
  if (sealed.ok && !opts.dryRun) {
    await saveRuleMap(deps.db, memberId, sealed.map, deps.clock.now());
    // The rules' figures follow them to their new names (rule-names.ts).
    const renames: Array<readonly [string, string]> = r
      ? [[r.from, r.to]]
      : opts.inPlace
        ? rulesRenamedInPlace(stored, map)
        : [];
    if (memberId !== undefined) {
      const names = sealed.map.rules.map((x) => x.name);
      await recordRuleRenames(deps.db, memberId, renames, names, deps.clock.now());
    }
  }
  return sealed;
}

/**
 * Once at start: encrypts the credentials of maps stored before they were encrypted, and
 * marks in each portal's map the credentials it took over from the default map before saves
 * marked them (`markInherited`). A map whose stored form differs is saved again. Returns
 * how many were.
 */
export async function sealStoredMaps(deps: MapSaver & { logger: Logger }): Promise<number> {
  let sealed = 0;
  const maps = await listRuleMaps(deps.db);
  const defaults = maps.find((m) => m.scope === DEFAULT_SCOPE)?.map;
  for (const { scope, map } of maps) {
    // `$env` names were checked when the map was saved; only text is encrypted here.
    const result = sealMap(map, { box: deps.box, envNames: { has: () => true } });
    if (!result.ok) {
      deps.logger.warn({ scope, errors: result.errors.length }, 'stored map not sealed');
      continue;
    }
    const stored =
      scope !== DEFAULT_SCOPE && defaults
        ? markInherited(result.map, defaults, deps.box)
        : result.map;
    if (JSON.stringify(stored) === JSON.stringify(map)) continue;
    await saveRuleMapInScope(deps.db, scope, stored, deps.clock.now());
    sealed += 1;
  }
  if (sealed) deps.logger.info({ maps: sealed }, 'encrypted the secrets of stored rule maps');
  return sealed;
}
