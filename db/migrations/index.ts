import type { Knex } from 'knex';
import * as m0001 from './0001-init.js';

/** Ordered, append-only list of migrations. Never edit a migration that has shipped. */
export const migrations: ReadonlyArray<{ name: string; module: Knex.Migration }> = [
  { name: '0001-init', module: m0001 },
];
