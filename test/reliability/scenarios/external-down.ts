import { saveRuleMap } from '../../../server/rules/map-store.js';
import { startInProcessApp } from '../lib/installed-app.js';
import { fmt } from '../lib/deliveries.js';
import { wonToTarget } from '../lib/rules.js';
import { startTarget } from '../lib/target.js';
import type { ReliabilityContext, Row, Scenario } from '../types.js';

const MINUTE = 60_000;
/** How far the app clock moves between two rounds of the worker. */
const STEP_MS = 30_000;

/**
 * An external system (the accounting API a rule posts to) is down for 30 minutes of app
 * time: 15 answering 503, 15 refusing connections. Deals are won before and during the
 * outage. The app runs with its default retry policy (RETRY_BASE_SECONDS 10, MAX_ATTEMPTS
 * 10); its clock is moved in 30 s steps, the worker running whatever is due at each. After
 * the target is back, every event must be processed and no step accepted twice.
 */
export const scenario: Scenario = async (ctx: ReliabilityContext): Promise<Row[]> => {
  const full = ctx.scale === 'full';
  const perWave = full ? 200 : 20;
  const target = await startTarget();
  const { h, portal, settle, close } = await startInProcessApp(ctx, { WORKER_CONCURRENCY: '8' });
  try {
    await saveRuleMap(h.t.deps.db, undefined, wonToTarget(target.url), h.t.clock.now());
    // Each retry reads its deal afresh over REST. The app paces REST calls in real time
    // (2/s); 30 minutes here pass in seconds, so the portal gets a budget to match.
    h.t.deps.bitrix.limiter.setLimits(portal.memberId, { drainPerSec: 100, burst: 500 });
    const deals: string[] = [];
    for (let i = 0; i < 2 * perWave; i++)
      deals.push((await portal.addDeal({ TITLE: `Order ${i}`, STAGE_ID: 'NEW' })).id);
    await settle();

    const win = async (ids: string[]) => {
      for (const id of ids) await portal.updateDeal(id, { STAGE_ID: 'WON' });
      await portal.whenIdle();
      await h.services.intake.drain();
    };
    let simMs = 0;
    const step = async () => {
      h.t.clock.advance(STEP_MS);
      simMs += STEP_MS;
      await h.services.worker.drain();
    };

    // Down: 503 for 15 minutes, then connection refused for 15 more. One wave is won as it
    // goes down, the other in the middle of the outage.
    await target.setMode('error');
    await win(deals.slice(0, perWave));
    await h.services.worker.drain();
    while (simMs < 15 * MINUTE) await step();
    await target.setMode('refused');
    await win(deals.slice(perWave));
    await h.services.worker.drain();
    while (simMs < 30 * MINUTE) await step();
    const outageMs = simMs;
    const db = h.t.deps.db;
    const statusCount = async (statuses: string[]) =>
      Number(
        (
          (await db('events')
            .where('event', 'ONCRMDEALUPDATE')
            .whereIn('status', statuses)
            .count({ n: '*' })
            .first()) as { n: number }
        ).n,
      );
    const processedDuringOutage = await statusCount(['processed']);
    const attemptsDown = Number(
      ((await db('action_runs').sum({ n: 'attempts' }).first()) as { n: number | null }).n ?? 0,
    );

    // Back up: keep moving time until nothing is left (at most 6 h, the retry cap).
    await target.setMode('up');
    while (
      (await statusCount(['received', 'processing'])) > 0 &&
      simMs < outageMs + 6 * 60 * MINUTE
    )
      await step();
    const afterMin = (simMs - outageMs) / MINUTE;
    const events = await statusCount(['received', 'processing', 'processed', 'failed', 'skipped']);
    const processed = await statusCount(['processed']);
    const failed = await statusCount(['failed']);
    const twice = target.duplicates();
    return [
      {
        area: 'Faults',
        check: `External HTTP target down for ${outageMs / MINUTE} simulated minutes (503, then connection refused)`,
        measured:
          `events ${fmt(events)} · processed ${fmt(processed)} (${processedDuringOutage} while down) · failed ${failed}` +
          ` · step attempts while down ${fmt(attemptsDown)} · all done ${afterMin} min after it returned` +
          ` · accepted twice ${twice}`,
        expected: 'all processed after it returns, none twice',
        pass:
          events === 2 * perWave &&
          processed === events &&
          processedDuringOutage === 0 &&
          target.accepted.size === events &&
          twice === 0,
      },
    ];
  } finally {
    await close();
    await target.close();
  }
};
