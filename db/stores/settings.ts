import { randomInt } from 'node:crypto';
import type { Knex } from 'knex';

/**
 * The scope of app-wide defaults (the default rule map). Portal scopes are their member_id;
 * a colon never occurs in one (install and intake refuse it), so no portal — not even one
 * whose member_id is `default` — can read or write the defaults through its own scope.
 */
export const DEFAULT_SCOPE = ':default';

export async function getSetting<T>(db: Knex, scope: string, key: string): Promise<T | undefined> {
  const row = await db('settings').where({ scope, key }).first('value');
  return row ? (JSON.parse(row.value as string) as T) : undefined;
}

export async function putSetting(
  db: Knex,
  scope: string,
  key: string,
  value: unknown,
  now: Date,
): Promise<void> {
  await db('settings')
    .insert({
      scope,
      key,
      value: JSON.stringify(value),
      updated_at: now.getTime(),
      revision: randomInt(1, 2 ** 47),
    })
    .onConflict(['scope', 'key'])
    .merge(['value', 'updated_at', 'revision']);
}

/**
 * What tells one write of a setting from another without its value: `updated_at` and the
 * random `revision` each write draws (migration 0038), as text.
 */
const versionOf = (r: { updated_at: unknown; revision?: unknown }): string =>
  `${String(r.updated_at)}:${r.revision === null || r.revision === undefined ? '' : String(r.revision)}`;

/** The versions of `key` in each of `scopes` that has it: scope → version. */
export async function settingVersions(
  db: Knex,
  scopes: readonly string[],
  key: string,
): Promise<Map<string, string>> {
  const rows = (await db('settings')
    .where({ key })
    .whereIn('scope', [...scopes])
    .select('scope', 'updated_at', 'revision')) as Array<{
    scope: string;
    updated_at: unknown;
    revision: unknown;
  }>;
  return new Map(rows.map((r) => [r.scope, versionOf(r)]));
}

/** A setting's stored text and its version (settingVersions), or undefined. */
export async function settingText(
  db: Knex,
  scope: string,
  key: string,
): Promise<{ text: string; version: string } | undefined> {
  const row = (await db('settings')
    .where({ scope, key })
    .first('value', 'updated_at', 'revision')) as
    { value: string; updated_at: unknown; revision: unknown } | undefined;
  return row ? { text: row.value, version: versionOf(row) } : undefined;
}

export async function deleteSetting(db: Knex, scope: string, key: string): Promise<void> {
  await db('settings').where({ scope, key }).delete();
}

/** Every scope's value of one key (a few rows: one per portal that has its own). */
export async function listSettings<T>(
  db: Knex,
  key: string,
): Promise<Array<{ scope: string; value: T }>> {
  const rows = (await db('settings').where({ key }).select('scope', 'value')) as Array<{
    scope: string;
    value: string;
  }>;
  return rows.map((r) => ({ scope: r.scope, value: JSON.parse(r.value) as T }));
}

/**
 * The values of `keys` in each of `scopes` (at most a few hundred: they are bound
 * parameters), in one query: scope → key → value; a missing row is a missing entry, as
 * getSetting's undefined.
 */
export async function settingsOfScopes(
  db: Knex,
  scopes: readonly string[],
  keys: readonly string[],
): Promise<Map<string, Map<string, unknown>>> {
  const out = new Map<string, Map<string, unknown>>();
  if (scopes.length === 0 || keys.length === 0) return out;
  const rows = (await db('settings')
    .whereIn('scope', [...scopes])
    .whereIn('key', [...keys])
    .select('scope', 'key', 'value')) as Array<{ scope: string; key: string; value: string }>;
  for (const r of rows) {
    const m = out.get(r.scope) ?? new Map<string, unknown>();
    m.set(r.key, JSON.parse(r.value) as unknown);
    out.set(r.scope, m);
  }
  return out;
}
