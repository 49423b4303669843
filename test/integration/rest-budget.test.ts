import { afterAll, describe, expect, it } from '@jest/globals';
import { runDealBurst, wonRuleMap } from '../helpers/burst.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

describe('the Bitrix24 REST budget under a burst', () => {
  let s: PaidDealScenario;
  afterAll(async () => {
    await s.close();
  });

  it('processes 1,000 updates over 200 deals with few REST calls and no QUERY_LIMIT_EXCEEDED', async () => {
    s = await startPaidDealScenario(wonRuleMap);
    const r = await runDealBurst(s, 200, 5);
    process.stdout.write(`REST budget burst: ${JSON.stringify(r)}\n`);
    const events = await s.h.t.deps
      .db('events')
      .where({ event: 'ONCRMDEALUPDATE' })
      .select('status');
    expect(events).toHaveLength(1000);
    expect(events.every((e) => e.status === 'processed' || e.status === 'skipped')).toBe(true);
    expect(r.limitErrors).toBe(0);
    expect(r.restCallsPerEvent).toBeLessThanOrEqual(0.1);
    // Every third deal was won in the last round: one notification each.
    expect(s.accounting.requests).toHaveLength(67);
  }, 120_000);
});
