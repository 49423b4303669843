import type { Knex } from 'knex';

/** The scope of app-wide defaults; portal scopes are their member_id. */
export const DEFAULT_SCOPE = 'default';

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
