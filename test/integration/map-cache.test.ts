import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { openDb } from '../../db/connect.js';
import {
  RULES_KEY,
  deleteRuleMap,
  effectiveMap,
  effectiveMapWithSource,
  saveRuleMap,
} from '../../server/rules/map-store.js';
import type { EventMap } from '../../server/rules/model.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const mapOf = (name: string): EventMap => ({
  rules: [{ name, on: ['ONCRMDEALUPDATE'], actions: [{ type: 'sms', to: '1', text: name }] }],
});
const names = (m: EventMap) => m.rules.map((r) => r.name);

/**
 * The parsed rule maps the processor and the pages share (server/rules/map-store.ts): parsed
 * once per write, on every instance, and never a map older than the last write.
 */
describe('the parsed rule map cache', () => {
  let t: TestDeps;
  let other: Knex;
  beforeAll(async () => {
    t = await createTestDeps();
    // A second instance on the same database: its own handle, its own cache.
    other = openDb(
      t.dbEnv.DATABASE_URL
        ? { client: 'pg', connectionString: t.dbEnv.DATABASE_URL }
        : { client: 'sqlite', filename: t.dbFile },
    );
  });
  afterAll(async () => {
    await other.destroy();
    await t.close();
  });

  it('parses a map once, shares it frozen, and reads a write made in the same millisecond', async () => {
    const { db } = t.deps;
    const now = t.clock.now();
    await saveRuleMap(db, 'm1', mapOf('first'), now);
    const a = await effectiveMap(db, 'm1');
    expect(names(a)).toEqual(['first']);
    expect(await effectiveMap(db, 'm1')).toBe(a);
    expect(() => {
      (a.rules as unknown[]).push(mapOf('x').rules[0]);
    }).toThrow(TypeError);
    expect(() => {
      (a.rules[0] as { name: string }).name = 'changed';
    }).toThrow(TypeError);
    // The clock has not moved: updated_at alone would not tell this write from the last.
    await saveRuleMap(db, 'm1', mapOf('second'), now);
    expect(names(await effectiveMap(db, 'm1'))).toEqual(['second']);
  });

  it("sees another instance's writes and removals at once", async () => {
    const { db } = t.deps;
    const now = t.clock.now();
    await saveRuleMap(db, undefined, mapOf('default'), now);
    await saveRuleMap(db, 'm2', mapOf('own'), now);
    expect(names(await effectiveMap(other, 'm2'))).toEqual(['own']);
    await saveRuleMap(db, 'm2', mapOf('own 2'), now);
    expect(names(await effectiveMap(other, 'm2'))).toEqual(['own 2']);
    // Removed, then saved again in the same millisecond: each read says which.
    await deleteRuleMap(db, 'm2');
    expect(await effectiveMapWithSource(other, 'm2')).toMatchObject({ source: 'default' });
    expect(names(await effectiveMap(other, 'm2'))).toEqual(['default']);
    await saveRuleMap(db, 'm2', mapOf('own'), now);
    expect(names(await effectiveMap(other, 'm2'))).toEqual(['own']);
    await deleteRuleMap(db);
    await deleteRuleMap(db, 'm2');
    expect(await effectiveMapWithSource(other, 'm2')).toEqual({
      map: { rules: [] },
      source: 'none',
    });
  });

  it('reads a map stored before revisions were kept, and again once it is written', async () => {
    const { db } = t.deps;
    const now = t.clock.now();
    await saveRuleMap(db, 'm3', mapOf('old'), now);
    await db('settings').where({ scope: 'm3', key: RULES_KEY }).update({ revision: null });
    expect(names(await effectiveMap(db, 'm3'))).toEqual(['old']);
    t.clock.advance(1);
    await saveRuleMap(db, 'm3', mapOf('new'), t.clock.now());
    expect(names(await effectiveMap(db, 'm3'))).toEqual(['new']);
  });
});
