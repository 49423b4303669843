import type { EventMap } from '../../server/rules/model.js';
import type { PaidDealScenario } from './scenario.js';

/** One rule: every deal update is posted to the accounting stand-in (a no-op action). */
export const everyUpdateMap = (urls: { accounting: string }): EventMap => ({
  rules: [
    {
      name: 'every update',
      on: ['ONCRMDEALUPDATE'],
      actions: [
        {
          type: 'http',
          method: 'POST',
          url: `${urls.accounting}/noop`,
          body: { id: '{{deal.ID}}' },
        },
      ],
    },
  ],
});

/** One rule: a deal that becomes WON is posted to the accounting stand-in. */
export const wonRuleMap = (urls: { accounting: string }): EventMap => ({
  rules: [
    {
      name: 'Won: notify accounting',
      on: ['ONCRMDEALUPDATE'],
      when: [{ field: 'STAGE_ID', becomes: 'WON' }],
      actions: [
        {
          type: 'http',
          method: 'POST',
          url: `${urls.accounting}/won`,
          body: { id: '{{deal.ID}}' },
        },
      ],
    },
  ],
});

export interface BurstResult {
  deals: number;
  updates: number;
  restCalls: number;
  restCallsPerEvent: number;
  limitErrors: number;
  drainMs: number;
}

/**
 * A burst against a rate-limited portal: `deals` deals are created (and processed), then
 * `rounds` rounds of updates touch every deal once per round (a second apart on the
 * portal's clock, so each is a distinct delivery); then the worker drains the backlog.
 * Counts the REST calls the app made while processing the updates.
 */
export async function runDealBurst(
  s: PaidDealScenario,
  deals: number,
  rounds: number,
): Promise<BurstResult> {
  s.portal.setRateLimit({ enabled: true, drainPerSec: 2, burst: 50 });
  const ids: string[] = [];
  for (let i = 0; i < deals; i++)
    ids.push(
      (
        await s.portal.addDeal({
          TITLE: `Burst ${i}`,
          STAGE_ID: 'NEW',
          OPPORTUNITY: String(10 * i),
        })
      ).id,
    );
  await s.drain();
  // Requests on the wire: commands inside a batch are recorded too, but are not requests.
  const requests = () => s.portal.calls.filter((c) => !c.inBatch).length;
  const callsBefore = requests();
  const limitBefore = s.portal.rateLimitHits;
  for (let r = 0; r < rounds; r++) {
    s.shiftPortalTime(1000);
    const last = r === rounds - 1;
    await Promise.all(
      ids.map((id, i) =>
        s.portal.updateDeal(
          id,
          last && i % 3 === 0 ? { STAGE_ID: 'WON' } : { TITLE: `Burst ${i} r${r}` },
        ),
      ),
    );
  }
  await s.portal.whenIdle();
  await s.h.services.intake.drain();
  const t0 = performance.now();
  await s.h.services.worker.drain();
  const drainMs = performance.now() - t0;
  const restCalls = requests() - callsBefore;
  const updates = deals * rounds;
  return {
    deals,
    updates,
    restCalls,
    restCallsPerEvent: restCalls / updates,
    limitErrors: s.portal.rateLimitHits - limitBefore,
    drainMs,
  };
}
