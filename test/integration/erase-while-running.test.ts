import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { runCliIn } from '../helpers/cli.js';
import { seedNewDeals, startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * `erase --entity` while the record's job is in the middle of its steps: the job must not
 * write the record's data back (a snapshot, step runs with their bodies, rule matches) after
 * the erasure, nor send it on to the remaining steps' destinations.
 */
describe('erase of a record whose job is running', () => {
  let s: PaidDealScenario;
  beforeAll(async () => {
    s = await startPaidDealScenario();
  }, 60_000);
  afterAll(async () => {
    await s?.close();
  });

  async function rowsOfDeal(db: Knex, portalId: number, id: string) {
    const count = async (q: Knex.QueryBuilder) =>
      Number(((await q.count({ n: '*' }).first()) as { n: number | string }).n);
    const events = (await db('events')
      .where({ portal_id: portalId, entity_type: 'deal', entity_id: id })
      .pluck('id')) as number[];
    const byEntity = { portal_id: portalId, entity_type: 'deal', entity_id: id };
    return {
      events: events.length,
      jobs: await count(db('jobs').where({ portal_id: portalId, entity_key: `deal:${id}` })),
      action_runs: await count(
        db('action_runs').where('idempotency_key', 'like', `%:deal:${id}:%`),
      ),
      orphan_runs: await count(db('action_runs').whereNotIn('event_id', db('events').select('id'))),
      orphan_matches: await count(
        db('rule_matches').whereNotIn('event_id', db('events').select('id')),
      ),
      entity_snapshots: await count(db('entity_snapshots').where(byEntity)),
      own_writes: await count(db('own_writes').where(byEntity)),
    };
  }

  it('leaves nothing of the record behind and sends it nowhere else', async () => {
    const { db } = s.h.t.deps;
    const [deal] = (await seedNewDeals(s, 1)) as [string];
    const portalId = Number((await db('portals').first('id')).id);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    s.accounting.handle(async () => {
      await held;
      return { status: 201, body: { id: 'INV-7' } };
    });
    await s.portal.updateDeal(deal, { STAGE_ID: 'WON' });
    const working = s.drain();
    for (let i = 0; i < 200 && s.accounting.requests.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(s.accounting.requests).toHaveLength(1);

    const member = String((await db('portals').first('member_id')).member_id);
    const r = await runCliIn(s.h.t, ['erase', '--portal', member, '--entity', `deal:${deal}`]);
    expect(r.code).toBe(0);
    // The control: the erasure found the record's rows while its job was running.
    expect(r.out).toMatch(/events/);
    release();
    await working;
    await s.drain();

    expect(await rowsOfDeal(db, portalId, deal)).toEqual({
      events: 0,
      jobs: 0,
      action_runs: 0,
      orphan_runs: 0,
      orphan_matches: 0,
      entity_snapshots: 0,
      own_writes: 0,
    });
    expect(s.logistics.requests).toHaveLength(0);
    expect(s.sms.requests).toHaveLength(0);
  }, 60_000);
});
