import type { Knex } from 'knex';
import type { EventMap } from './model.js';
import {
  DEFAULT_SCOPE,
  deleteSetting,
  getSetting,
  listSettings,
  putSetting,
  settingText,
  settingVersions,
} from '../../db/stores/settings.js';

/** Settings key of an event map; the scope is `default` or a portal's member_id. */
export const RULES_KEY = 'rules';

/** A map with no rules: what a portal gets when neither it nor the default has one. */
export const EMPTY_MAP: EventMap = Object.freeze({
  rules: Object.freeze([]),
}) as unknown as EventMap;

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
 * default entirely, no merging. Parsed once per write and shared (frozen): a caller that
 * changes a map changes a copy (structuredClone), as `changeMap` does.
 */
export async function effectiveMapWithSource(
  db: Knex,
  memberId: string,
): Promise<{ map: EventMap; source: MapSource }> {
  const own = scopeOf(memberId);
  const versions = await settingVersions(db, [own, DEFAULT_SCOPE], RULES_KEY);
  const cache = cacheOf(db);
  for (const scope of [own, DEFAULT_SCOPE]) if (!versions.has(scope)) cache.delete(scope);
  for (const [scope, source] of [
    [own, 'portal'],
    [DEFAULT_SCOPE, 'default'],
  ] as const) {
    const version = versions.get(scope);
    if (version === undefined) continue;
    const map = await parsedMap(db, cache, scope, version);
    if (map) return { map, source };
  }
  return { map: EMPTY_MAP, source: 'none' };
}

/** A parsed map, the version of the row it was parsed from, and the row's length. */
interface CachedMap {
  version: string;
  map: EventMap;
  chars: number;
}
/**
 * Parsed maps by scope, per database handle, most recently used last. Reading and parsing a
 * map per event cost the main thread about 2 ms for a 250 KB map (a portal may keep 256 KB);
 * now each event asks only for the map's version (settingVersions) and parses it again only
 * after a write, on any instance. The maps are frozen: every reader shares them.
 */
const caches = new WeakMap<Knex, Map<string, CachedMap>>();
/** At most this many characters of maps are kept parsed per database handle (the oldest go). */
const CACHED_CHARS = 16 * 1024 * 1024;

function cacheOf(db: Knex): Map<string, CachedMap> {
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = new Map()));
  return cache;
}

async function parsedMap(
  db: Knex,
  cache: Map<string, CachedMap>,
  scope: string,
  version: string,
): Promise<EventMap | undefined> {
  const hit = cache.get(scope);
  if (hit && hit.version === version) {
    cache.delete(scope);
    cache.set(scope, hit);
    return hit.map;
  }
  // Read with its own version: a write between the two reads is kept as what it is.
  const row = await settingText(db, scope, RULES_KEY);
  if (!row) {
    cache.delete(scope);
    return undefined;
  }
  const map = deepFreeze(JSON.parse(row.text) as EventMap);
  cache.delete(scope);
  cache.set(scope, { version: row.version, map, chars: row.text.length });
  let chars = 0;
  for (const c of cache.values()) chars += c.chars;
  for (const [k, c] of cache) {
    if (chars <= CACHED_CHARS || k === scope) break;
    cache.delete(k);
    chars -= c.chars;
  }
  return map;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
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
