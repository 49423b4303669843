import type { Knex } from 'knex';
import type { EventMap } from './model.js';
import {
  DEFAULT_SCOPE,
  deleteSetting,
  getSetting,
  listSettings,
  putSetting,
} from '../../db/stores/settings.js';

/** Settings key of an event map; the scope is `default` or a portal's member_id. */
export const RULES_KEY = 'rules';

/** A map with no rules: what a portal gets when neither it nor the default has one. */
export const EMPTY_MAP: EventMap = Object.freeze({ rules: [] }) as EventMap;

const scopeOf = (memberId: string | undefined) => memberId ?? DEFAULT_SCOPE;

/**
 * The stored map of one scope: the portal's own (`memberId`) or the default (undefined).
 * Maps are validated before they are saved, so they are read back as they are.
 */
export async function getRuleMap(db: Knex, memberId?: string): Promise<EventMap | undefined> {
  return getSetting<EventMap>(db, scopeOf(memberId), RULES_KEY);
}

/** Saves a validated map as the portal's own (`memberId`) or as the default (undefined). */
export async function saveRuleMap(
  db: Knex,
  memberId: string | undefined,
  map: EventMap,
  now: Date,
): Promise<void> {
  await putSetting(db, scopeOf(memberId), RULES_KEY, map, now);
}

/** Every stored map with its scope (`default` or a member_id); a few rows, read at start. */
export async function listRuleMaps(db: Knex): Promise<Array<{ scope: string; map: EventMap }>> {
  return (await listSettings<EventMap>(db, RULES_KEY)).map((r) => ({
    scope: r.scope,
    map: r.value,
  }));
}

/** Saves a map under its scope as `listRuleMaps` gave it. */
export async function saveRuleMapInScope(
  db: Knex,
  scope: string,
  map: EventMap,
  now: Date,
): Promise<void> {
  await putSetting(db, scope, RULES_KEY, map, now);
}

/** Drops a portal's own map, so it uses the default again (or drops the default). */
export async function deleteRuleMap(db: Knex, memberId?: string): Promise<void> {
  await deleteSetting(db, scopeOf(memberId), RULES_KEY);
}

/** Where a portal's effective map comes from. */
export type MapSource = 'portal' | 'default' | 'none';

/**
 * The map that applies to a portal and where it comes from: its own map replaces the
 * default entirely, no merging.
 */
export async function effectiveMapWithSource(
  db: Knex,
  memberId: string,
): Promise<{ map: EventMap; source: MapSource }> {
  const own = await getRuleMap(db, memberId);
  if (own) return { map: own, source: 'portal' };
  const def = await getRuleMap(db);
  return def ? { map: def, source: 'default' } : { map: EMPTY_MAP, source: 'none' };
}

/**
 * effectiveMap of a portal from settings read in bulk (settingsOfScopes with RULES_KEY over
 * portals' scopes and DEFAULT_SCOPE): the same choice, without a query per portal.
 */
export function effectiveMapOf(
  settings: ReadonlyMap<string, ReadonlyMap<string, unknown>>,
  memberId: string,
): EventMap {
  const own = settings.get(scopeOf(memberId))?.get(RULES_KEY) as EventMap | undefined;
  if (own) return own;
  const def = settings.get(DEFAULT_SCOPE)?.get(RULES_KEY) as EventMap | undefined;
  return def ? def : EMPTY_MAP;
}

/** The map that applies to a portal: its own if it has one, else the default, else empty. */
export async function effectiveMap(db: Knex, memberId: string): Promise<EventMap> {
  return (await effectiveMapWithSource(db, memberId)).map;
}
