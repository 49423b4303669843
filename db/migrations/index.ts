import type { Knex } from 'knex';
import * as m0001 from './0001-init.js';
import * as m0002 from './0002-processing.js';

/** Ordered, append-only list of migrations. Never edit a migration that has shipped. */
export const migrations: ReadonlyArray<{ name: string; module: Knex.Migration }> = [
  { name: '0001-init', module: m0001 },
  { name: '0002-processing', module: m0002 },
];
