import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import type { Knex } from 'knex';
import { openDb } from '../../db/connect.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * The main SQLite connection keeps its prepared statements (db/connect.ts keepStatements):
 * a kept statement answers as a fresh one would, after schema and setting changes too.
 */
describe('kept SQLite statements', () => {
  let tmp: ReturnType<typeof tempDir>;
  let db: Knex;
  beforeEach(() => {
    tmp = tempDir('b24hooks-stmt-');
    db = openDb({ client: 'sqlite', filename: path.join(tmp.dir, 'db.sqlite') });
  });
  afterEach(async () => {
    await db.destroy();
    tmp.cleanup();
  });

  it('follows schema changes, pragmas and per-query options', async () => {
    await db.schema.createTable('t', (t) => {
      t.increments('id');
    });
    await db('t').insert({});
    const columns = async () => Object.keys(((await db('t').select('*')) as object[])[0]!);
    expect(await columns()).toEqual(['id']);
    await db.schema.alterTable('t', (t) => {
      t.string('x').defaultTo('a');
    });
    expect(await columns()).toEqual(['id', 'x']);

    const fk = async () =>
      ((await db.raw('pragma foreign_keys')) as Array<{ foreign_keys: number }>)[0]!.foreign_keys;
    const seen = [await fk()];
    for (const v of ['OFF', 'ON', 'OFF', 'ON']) {
      await db.raw(`pragma foreign_keys = ${v}`);
      seen.push(await fk());
    }
    expect(seen).toEqual([1, 0, 1, 0, 1]);

    // A query that asks for BigInts gets them; the next one with the same text does not.
    const q = 'select id from t';
    const big = (await db.raw(q).options({ safeIntegers: true })) as Array<{ id: unknown }>;
    const plain = (await db.raw(q)) as Array<{ id: unknown }>;
    expect([typeof big[0]!.id, typeof plain[0]!.id]).toEqual(['bigint', 'number']);
  });
});
