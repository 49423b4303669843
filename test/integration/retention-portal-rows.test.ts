import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { prune } from '../../server/retention/prune.js';
import { savePortalRetention } from '../../server/retention/policy.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const DAY = 86_400_000;

/**
 * A portal that keeps its data for less time than the server (its Retention page): the rows
 * of the aged tables that are its own (finished alert jobs, which quote its events' errors;
 * the loop guard's writes; its http destinations' last errors) went only at the server's
 * figure, 30 days, though the page says the portal keeps 7 (data-lifecycle review).
 */
describe('a portal’s shorter retention and its rows in the aged tables', () => {
  let t: TestDeps;
  let short: TestPortal;
  let usual: TestPortal;
  beforeAll(async () => {
    t = await createTestDeps();
    short = await seedPortal(t.deps);
    usual = await seedPortal(t.deps);
    const now = t.clock.now();
    await savePortalRetention(t.deps.db, short.memberId, { days: 7, failedDays: 7 }, now);
  });
  afterAll(async () => {
    await t.close();
  });

  async function seedRows(p: TestPortal, at: number) {
    const { db } = t.deps;
    await db('jobs').insert({
      type: 'alert',
      event_id: null,
      portal_id: p.row.id,
      entity_key: `alert:email:failed:${p.memberId}`,
      payload: JSON.stringify({ channel: 'email', text: '#1 deal 42: 503 cannot store Ann Smith' }),
      status: 'done',
      attempts: 1,
      max_attempts: 10,
      run_at: at,
      created_at: at,
      updated_at: at,
    });
    await db('own_writes').insert({
      portal_id: p.row.id,
      entity_type: 'deal',
      entity_id: '42',
      rule_name: 'r',
      depth: 1,
      written_at: at,
    });
    await db('destinations').insert({
      key: `http:erp${at}.example#${p.row.id}`,
      state: 'closed',
      failures: 0,
      last_error: '503 cannot store Ann Smith',
      updated_at: at,
    });
  }

  const left = async (p: TestPortal) => {
    const { db } = t.deps;
    const n = async (q: PromiseLike<unknown>) => Number(((await q) as { n: unknown })?.n);
    return {
      alertJobs: await n(
        db('jobs').where({ portal_id: p.row.id, type: 'alert' }).count({ n: '*' }).first(),
      ),
      ownWrites: await n(db('own_writes').where('portal_id', p.row.id).count({ n: '*' }).first()),
      destinations: await n(
        db('destinations').where('key', 'like', `%#${p.row.id}`).count({ n: '*' }).first(),
      ),
    };
  };

  it('prunes them at the portal’s own figure; another portal’s stay to the server’s', async () => {
    const tenDaysAgo = t.clock.now().getTime() - 10 * DAY;
    await seedRows(short, tenDaysAgo);
    await seedRows(usual, tenDaysAgo);
    // And rows older than the server's 30 days too: the dry run counts them once (it
    // counted them in the portal's pass and again in the server's, 2 where a run removes 1).
    const fortyDaysAgo = t.clock.now().getTime() - 40 * DAY;
    await seedRows(short, fortyDaysAgo);
    const dry = await prune(t.deps, { dryRun: true });
    const report = await prune(t.deps);
    expect(report.tables).toMatchObject({ jobs: 2, destinations: 2 });
    expect(dry.tables).toEqual(report.tables);
    expect(report.portals.find((p) => p.memberId === short.memberId)!.tables).toMatchObject({
      jobs: 2,
      destinations: 2,
    });
    // The loop guard's writes (ids and rule names) stay to the server's figure: an echo may
    // wait in a paused portal's backlog for days.
    expect(await left(short)).toEqual({ alertJobs: 0, ownWrites: 1, destinations: 0 });
    // Control: the same rows of a portal on the server's 30 days stay.
    expect(await left(usual)).toEqual({ alertJobs: 1, ownWrites: 1, destinations: 1 });
  });
});
