import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { isSqlite } from '../../db/connect.js';
import { claimFairly, topicKey, type FairClaimOptions } from '../../db/stores/jobs.js';
import { seedJobs, seedPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * Fair claiming inside one portal (db/stores/jobs.ts `claimFairly`), on the real database:
 * a portal's slots go round-robin across its topics (event names), one topic holding at
 * most its cap while others are due.
 */
describe('claiming across the topics of one portal', () => {
  let t: TestDeps;
  let portalId: number;

  beforeEach(async () => {
    t = await createTestDeps();
    portalId = (await seedPortal(t.deps)).row.id;
  });
  afterEach(async () => {
    await t.close();
  });

  /** `n` due jobs of `topic`, each for its own entity unless `entity` is given. */
  const jobs = (topic: string, n: number, entity?: string) =>
    seedJobs(t.deps, portalId, n, { topic, entity });

  const claim = async (limit: number, holding: Record<string, number> = {}) => {
    const holdingTopics = new Map(
      Object.entries(holding).map(([topic, n]) => [topicKey(portalId, topic), n] as const),
    );
    const held = Object.values(holding).reduce((s, n) => s + n, 0);
    const o: FairClaimOptions = {
      workerId: 'w1',
      now: t.clock.now().getTime(),
      limit,
      holding: new Map(held ? [[portalId, held]] : []),
      holdingTopics,
      cap: 2,
      concurrency: 4,
      topicShare: 0.5,
      after: 0,
    };
    const got = await claimFairly(t.deps.db, o);
    const by: Record<string, number> = {};
    for (const j of got) by[j.topic ?? ''] = (by[j.topic ?? ''] ?? 0) + 1;
    return by;
  };

  it('hands the slots out across topics, whatever order their jobs came in', async () => {
    await jobs('ONCRMDEALUPDATE', 10);
    await jobs('ONCRMCONTACTUPDATE', 10);
    expect(await claim(4)).toEqual({ ONCRMDEALUPDATE: 2, ONCRMCONTACTUPDATE: 2 });
  });

  it('gives a topic no more once it holds its cap while another is due', async () => {
    await jobs('ONCRMDEALUPDATE', 10);
    await jobs('ONCRMCONTACTUPDATE', 10);
    expect(await claim(2, { ONCRMDEALUPDATE: 2 })).toEqual({ ONCRMCONTACTUPDATE: 2 });
  });

  it('lets a topic alone take every slot', async () => {
    await jobs('ONCRMDEALUPDATE', 10);
    expect(await claim(4)).toEqual({ ONCRMDEALUPDATE: 4 });
  });

  it('gives the slots a topic cannot use to the topics that may take more', async () => {
    // Two updates of one company: the second waits for the first, so this topic (first in
    // the round) is handed two slots and can use one.
    await jobs('ONCRMCOMPANYUPDATE', 2, 'same');
    await jobs('ONCRMCONTACTUPDATE', 10);
    await jobs('ONCRMDEALUPDATE', 10);
    const got = await claim(4);
    expect(got.ONCRMCOMPANYUPDATE).toBe(1);
    expect(Object.values(got).reduce((s, n) => s + n, 0)).toBe(4);
  });

  // The lease is `id IN (…) AND status = 'pending'`. Without statistics SQLite answered it
  // with the index on `status`, reading every pending job: 32 ms per claim with a backlog,
  // on the main thread. It must look up the ids.
  it('leases the claimed jobs by id, not through an index of every pending job', async () => {
    const db = t.deps.db;
    if (!isSqlite(db)) return;
    await jobs('ONCRMDEALUPDATE', 50);
    const updates: Array<{ sql: string; bindings: readonly Knex.Value[] }> = [];
    const onQuery = (q: { sql: string; bindings: readonly Knex.Value[] }) => {
      if (/^update `jobs`/i.test(q.sql)) updates.push(q);
    };
    db.on('query', onQuery);
    try {
      expect(await claim(3)).toEqual({ ONCRMDEALUPDATE: 3 });
    } finally {
      db.off('query', onQuery);
    }
    expect(updates).toHaveLength(1);
    const plan = (
      (await db.raw(`explain query plan ${updates[0]!.sql}`, updates[0]!.bindings)) as Array<{
        detail: string;
      }>
    )
      .map((p) => p.detail)
      .join('\n');
    expect(plan).toMatch(/USING INTEGER PRIMARY KEY/);
    expect(plan).not.toMatch(/USING (COVERING )?INDEX/);
  });
});
