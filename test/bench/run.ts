import { fairnessBench } from './fairness.js';
import { intakeBench } from './intake.js';
import { mapsBench } from './maps.js';
import { processBench } from './process.js';
import { pruneBench } from './prune.js';
import { scaleBench } from './scale.js';
import { soakBench } from './soak.js';
import { statementsBench } from './statements.js';
import { tenantsBench } from './tenants.js';
import { uiBench } from './ui.js';

/** `npm run bench -- <name> [--duration S] [--connections N]` */
const [name = 'intake', ...rest] = process.argv.slice(2);
const flag = (n: string, def: number) => {
  const i = rest.indexOf(`--${n}`);
  return i >= 0 ? Number(rest[i + 1]) : def;
};
const benches: Record<string, () => Promise<void>> = {
  intake: () =>
    intakeBench({
      durationSec: flag('duration', 10),
      connections: flag('connections', 50),
      warmupSec: flag('warmup', 2),
      rounds: flag('rounds', 3),
      allOnSec: flag('all-on', 60),
      allOnWithoutRule: rest.includes('--no-rule'),
      client: rest.includes('--autocannon') ? 'autocannon' : 'lean',
    }),
  process: () => processBench(),
  maps: () => mapsBench({ reads: flag('reads', 1000), rounds: flag('rounds', 5) }),
  statements: () =>
    statementsBench({ events: flag('events', 100_000), rounds: flag('rounds', 10) }),
  prune: () => pruneBench({ rows: flag('rows', 1_000_000), connections: flag('connections', 50) }),
  fairness: () => fairnessBench(),
  ui: () =>
    uiBench({
      events: flag('events', 1_000_000),
      requests: flag('requests', 50),
      loadSeconds: flag('load-seconds', 30),
    }),
  soak: () =>
    soakBench({
      minutes: flag('minutes', 60),
      rate: flag('rate', 20),
      snapshots: rest.includes('--snapshots') ? rest[rest.indexOf('--snapshots') + 1] : undefined,
    }),
  tenants: () => tenantsBench({ portals: flag('portals', 5000), rounds: flag('rounds', 3) }),
  scale: () =>
    scaleBench({
      durationSec: flag('duration', 10),
      connections: flag('connections', 48),
      events: flag('events', 6000),
    }),
};
const bench = benches[name];
if (!bench) {
  process.stderr.write(`unknown benchmark "${name}"; known: ${Object.keys(benches).join(', ')}\n`);
  process.exit(2);
}
await bench();
