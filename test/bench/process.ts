import { everyUpdateMap, runDealBurst, wonRuleMap } from '../helpers/burst.js';
import { startPaidDealScenario } from '../helpers/scenario.js';
import { fmt } from './util.js';

/**
 * `npm run bench -- process`: against the emulator with its rate limit on (2/s, burst 50),
 * (1) a burst of 1,000 updates spread over 200 deals with a rule that fires on WON:
 * REST calls per event, QUERY_LIMIT_EXCEEDED count, time to drain; (2) throughput with a
 * no-op action (an HTTP POST to a local sink that answers at once) on every update.
 */
export async function processBench(): Promise<void> {
  const won = await startPaidDealScenario(wonRuleMap);
  const a = await runDealBurst(won, 200, 5);
  await won.close();

  const noop = await startPaidDealScenario(everyUpdateMap);
  const b = await runDealBurst(noop, 400, 5);
  const actions = noop.accounting.requests.length;
  await noop.close();

  const rows = [
    ['burst, rule on WON', a],
    ['no-op action on every update', b],
  ] as const;
  process.stdout.write(
    '\n| scenario | updates | deals | REST calls | REST calls / event | QUERY_LIMIT_EXCEEDED | drain | events/s |\n|---|---|---|---|---|---|---|---|\n',
  );
  for (const [name, r] of rows) {
    process.stdout.write(
      `| ${name} | ${fmt(r.updates)} | ${r.deals} | ${r.restCalls} | ${fmt(r.restCallsPerEvent, 3)} | ${r.limitErrors} | ${fmt(r.drainMs / 1000, 1)} s | ${fmt(r.updates / (r.drainMs / 1000))} |\n`,
    );
  }
  process.stdout.write(`\nno-op run: ${actions} actions sent (one per update)\n`);
}
