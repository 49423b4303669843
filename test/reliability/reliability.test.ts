import { afterAll, describe, expect, it } from '@jest/globals';
import { SCENARIOS, cleanupContext, createContext, runScenario } from './suite.js';
import { formatTable } from './table.js';
import type { Row } from './types.js';

/**
 * The reliability and security suite in its short form, inside `npm test` (the full form is
 * `npm run test:reliability`). Scenarios share one context and run in the suite's order, so
 * the secrets scan at the end sees what every other scenario gathered. Spawned servers run
 * the built `dist/` (npm test builds first).
 */
describe('reliability and security suite (short form)', () => {
  const ctx = createContext('short');
  const rows: Row[] = [];
  afterAll(() => {
    process.stdout.write(`\nReliability (short form)\n${formatTable(rows)}\n`);
    cleanupContext(ctx);
  });

  for (const s of SCENARIOS) {
    it(`${s.name}: every check passes`, async () => {
      const got = await runScenario(ctx, s);
      rows.push(...got);
      expect(got.filter((r) => !r.pass)).toEqual([]);
    }, 180_000);
  }
});
