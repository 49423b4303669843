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
    .insert({ scope, key, value: JSON.stringify(value), updated_at: now.getTime() })
    .onConflict(['scope', 'key'])
    .merge(['value', 'updated_at']);
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
