import type { Knex } from 'knex';

/** A one-row write that proves the database takes writes (`/readyz`). */
export async function touchProbe(db: Knex, name: string, now: number): Promise<void> {
  await db('probes').insert({ name, at: now }).onConflict('name').merge(['at']);
}
