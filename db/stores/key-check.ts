import type { Knex } from 'knex';

/** The one row that proves which TOKEN_ENCRYPTION_KEY the database was written with. */
export interface KeyCheckRow {
  value_enc: string;
  created_at: number;
  rotated_at: number | null;
}

export async function getKeyCheck(db: Knex): Promise<KeyCheckRow | undefined> {
  const r = (await db('key_check').where({ id: 1 }).first()) as Record<string, unknown> | undefined;
  if (!r) return undefined;
  return {
    value_enc: String(r.value_enc),
    created_at: Number(r.created_at),
    rotated_at: r.rotated_at === null || r.rotated_at === undefined ? null : Number(r.rotated_at),
  };
}

/** Writes the first key check; another instance starting at once may win (then nothing). */
export async function insertKeyCheck(db: Knex, valueEnc: string, now: number): Promise<void> {
  await db('key_check')
    .insert({ id: 1, value_enc: valueEnc, created_at: now, rotated_at: null })
    .onConflict('id')
    .ignore();
}

/** Replaces the key check in a rotation (inside the rotation's transaction). */
export async function replaceKeyCheck(db: Knex, valueEnc: string, now: number): Promise<void> {
  await db('key_check').where({ id: 1 }).update({ value_enc: valueEnc, rotated_at: now });
}
