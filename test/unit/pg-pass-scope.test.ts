import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';
import { SQLITE_ONLY } from '../helpers/pg-pass-scope.js';

/**
 * The files the PostgreSQL pass leaves out (test/helpers/pg-pass-scope.ts) must not reach
 * for the test database: a file that starts to would silently lose its PostgreSQL run.
 */
describe('the PostgreSQL pass leaves out only files that never open the test database', () => {
  // What picks the database of the pass: the deps, the harnesses built on them, the seeded
  // data dirs of spawned servers, and the pass's own checks.
  const DB_OF_THE_PASS =
    /createTestDeps|test-deps\.js|[Hh]arness|Scenario|seedDataDir|onPg\(|createTestDatabase|B24H_TEST_|DATABASE_URL/;

  it.each(SQLITE_ONLY)('%s', (name) => {
    const file = path.join(projectRoot(), 'test', 'integration', `${name}.test.ts`);
    expect(fs.existsSync(file)).toBe(true);
    const found = DB_OF_THE_PASS.exec(fs.readFileSync(file, 'utf8'));
    expect(found?.[0] ?? null).toBeNull();
  });

  it('catches a file that uses the deps (control)', () => {
    const file = path.join(projectRoot(), 'test', 'integration', 'shutdown-load.test.ts');
    expect(DB_OF_THE_PASS.test(fs.readFileSync(file, 'utf8'))).toBe(true);
  });
});
