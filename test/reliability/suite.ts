import fs from 'node:fs';
import { formatTable } from './table.js';
import type { ReliabilityContext, Row, Scale, Scenario } from './types.js';
import { scenario as intakeCrash } from './scenarios/intake-crash.js';
import { scenario as processingCrash } from './scenarios/processing-crash.js';
import { scenario as dbFaults } from './scenarios/db-faults.js';
import { scenario as externalDown } from './scenarios/external-down.js';
import { scenario as restFaults } from './scenarios/rest-faults.js';
import { scenario as hostileInput } from './scenarios/hostile-input.js';
import { scenario as access } from './scenarios/access.js';
import { scenario as injection } from './scenarios/injection.js';
import { scenario as secrets } from './scenarios/secrets.js';

export interface NamedScenario {
  name: string;
  run: Scenario;
}

/**
 * Every scenario, in the order they run. `secrets` must stay last: it scans what all the
 * others gathered in the context (logs, pages, data dirs) for every token issued.
 */
export const SCENARIOS: readonly NamedScenario[] = [
  { name: 'intake-crash', run: intakeCrash },
  { name: 'processing-crash', run: processingCrash },
  { name: 'db-faults', run: dbFaults },
  { name: 'external-down', run: externalDown },
  { name: 'rest-faults', run: restFaults },
  { name: 'hostile-input', run: hostileInput },
  { name: 'access', run: access },
  { name: 'injection', run: injection },
  { name: 'secrets', run: secrets },
];

export function createContext(scale: Scale): ReliabilityContext {
  return { scale, logs: [], pages: [], issuedTokens: new Set(), dataDirs: [] };
}

/** Runs one scenario; a scenario that throws becomes one failed row (the suite goes on). */
export async function runScenario(ctx: ReliabilityContext, s: NamedScenario): Promise<Row[]> {
  try {
    const rows = await s.run(ctx);
    if (rows.length > 0) return rows;
    return [fail(s.name, 'returned no rows')];
  } catch (e) {
    // fetch's own message is only "fetch failed": its cause says what (ECONNRESET, a port…),
    // and the stack where.
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const cause = err?.cause
      ? ` (${err.cause.code ?? err.cause.message ?? String(err.cause)})`
      : '';
    process.stderr.write(`reliability: scenario ${s.name} threw: ${err?.stack ?? String(e)}\n`);
    return [fail(s.name, `threw: ${err?.message ?? String(e)}${cause}`)];
  }
}

function fail(name: string, what: string): Row {
  return {
    area: 'Suite',
    check: `scenario ${name}`,
    measured: what.replace(/\s+/g, ' ').slice(0, 200),
    expected: 'runs to the end',
    pass: false,
  };
}

/** Removes the data dirs the scenarios left for the secret scan (KEEP_TEST_DB=1 keeps them). */
export function cleanupContext(ctx: ReliabilityContext): void {
  if (process.env.KEEP_TEST_DB === '1') {
    process.stderr.write(`kept reliability data in ${ctx.dataDirs.join(', ')}\n`);
    return;
  }
  for (const dir of ctx.dataDirs) fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Runs the scenarios in order on one context, prints the table and returns the rows.
 * `only` (scenario names) runs a subset, for working on one scenario; `secrets` then scans
 * only what that subset gathered.
 */
export async function runSuite(
  scale: Scale,
  opts: { only?: readonly string[]; print?: (text: string) => void } = {},
): Promise<Row[]> {
  const print = opts.print ?? ((text: string) => process.stdout.write(`${text}\n`));
  const ctx = createContext(scale);
  const rows: Row[] = [];
  try {
    for (const s of SCENARIOS) {
      if (opts.only?.length && !opts.only.includes(s.name)) continue;
      const started = performance.now();
      const got = await runScenario(ctx, s);
      rows.push(...got);
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      process.stderr.write(
        `reliability: ${s.name} ${secs} s, ${got.filter((r) => !r.pass).length} failed\n`,
      );
    }
  } finally {
    cleanupContext(ctx);
  }
  print(formatTable(rows));
  return rows;
}
