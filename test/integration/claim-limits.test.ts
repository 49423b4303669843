import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { claimFairly } from '../../db/stores/jobs.js';
import { seedJobs, seedPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * The claim's limits for the portals sending a flood (db/stores/jobs.ts `portalLimits`), on
 * the real database: a portal limited to none does not compete for the slots at all.
 */
describe('claiming with portal limits', () => {
  let t: TestDeps;
  let a: number;
  let b: number;

  beforeEach(async () => {
    t = await createTestDeps();
    a = (await seedPortal(t.deps)).row.id;
    b = (await seedPortal(t.deps)).row.id;
    await seedJobs(t.deps, a, 10);
    await seedJobs(t.deps, b, 10);
  });
  afterEach(async () => {
    await t.close();
  });

  const claim = async (portalLimits?: Map<number, number>) => {
    const got = await claimFairly(t.deps.db, {
      workerId: 'w1',
      now: t.clock.now().getTime(),
      limit: 4,
      holding: new Map(),
      cap: 2,
      concurrency: 4,
      after: 0,
      portalLimits,
    });
    return {
      a: got.filter((j) => j.portal_id === a).length,
      b: got.filter((j) => j.portal_id === b).length,
    };
  };

  it('shares the slots between two portals with due jobs (the control)', async () => {
    expect(await claim()).toEqual({ a: 2, b: 2 });
  });

  it('gives every slot to the other portal when one may take none', async () => {
    expect(await claim(new Map([[a, 0]]))).toEqual({ a: 0, b: 4 });
  });

  it('takes no more of a portal than its limit', async () => {
    expect((await claim(new Map([[a, 1]]))).a).toBe(1);
    expect(
      await claim(
        new Map([
          [a, 0],
          [b, 0],
        ]),
      ),
    ).toEqual({ a: 0, b: 0 });
  });
});
