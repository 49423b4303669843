import type { Knex } from 'knex';
import { createDeps, type Deps } from '../../server/deps.js';
import { systemClock } from '../../server/lib/clock.js';
import { silentLogger } from '../../server/lib/logger.js';
import { createServices } from '../../server/services.js';
import type { EventMap } from '../../server/rules/model.js';
import { insertJobs, type NewJob } from '../../db/stores/jobs.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { seedPortal } from '../helpers/event-builder.js';
import { startHttpSink } from '../helpers/http-sink.js';
import { tempDir } from '../helpers/temp-dir.js';
import { testConfig } from '../helpers/test-deps.js';
import { fmt } from './util.js';

const STEP_TIMEOUT_MS = 10_000;

const forward = (url: string): EventMap => ({
  rules: [
    {
      name: 'forward',
      on: ['ONCRMDEALDELETE'],
      actions: [{ type: 'http', method: 'POST', url, body: {}, timeoutMs: STEP_TIMEOUT_MS }],
    },
  ],
});

/** Stores `n` delete events of one portal with their jobs, as the intake would. */
async function addEvents(db: Knex, portal: { id: number; memberId: string }, n: number) {
  const now = Date.now();
  for (let i = 0; i < n; i += 200) {
    const rows = Array.from({ length: Math.min(200, n - i) }, (_, k) => ({
      portal_id: portal.id,
      member_id: portal.memberId,
      event: 'ONCRMDEALDELETE',
      entity_type: 'deal',
      entity_id: String(i + k + 1),
      status: 'received',
      received_at: now,
    }));
    const ids = (await db('events').insert(rows).returning('id')) as Array<{ id: number }>;
    const jobs: NewJob[] = ids.map((r, k) => ({
      type: 'process_event',
      event_id: Number(r.id),
      portal_id: portal.id,
      entity_key: `${portal.id}:deal:${i + k + 1}`,
      payload: null,
      max_attempts: 10,
      run_at: now,
    }));
    await insertJobs(db, jobs, now);
  }
}

interface RunResult {
  p50: number;
  p99: number;
  max: number;
  wallMs: number;
  aRequests: number;
  aRps: number;
}

async function run(withA: boolean): Promise<RunResult> {
  const tmp = tempDir('b24hooks-fair-');
  const hang = await startHttpSink(() => ({ delayMs: 60 * 60_000 }));
  const fast = await startHttpSink();
  const config = testConfig(tmp.dir, { ACTION_PRIVATE_HOSTS: '127.0.0.1', LOG_LEVEL: 'silent' });
  const deps: Deps = await createDeps(config, { clock: systemClock, logger: silentLogger() });
  const services = createServices(deps);
  try {
    const at = new Date();
    const others = [];
    let a: { id: number; memberId: string } | undefined;
    if (withA) {
      const p = await seedPortal(deps);
      a = { id: p.row.id, memberId: p.memberId };
      await saveRuleMap(deps.db, p.memberId, forward(`${hang.url}/hang`), at);
      await addEvents(deps.db, a, 1000);
    }
    for (let i = 0; i < 4; i++) {
      const p = await seedPortal(deps);
      await saveRuleMap(deps.db, p.memberId, forward(`${fast.url}/fast`), at);
      others.push({ id: p.row.id, memberId: p.memberId });
    }
    for (const p of others) await addEvents(deps.db, p, 100);
    const started = Date.now();
    services.worker.start();
    const ids = others.map((p) => p.id);
    for (;;) {
      const left = await deps
        .db('events')
        .whereIn('portal_id', ids)
        .whereIn('status', ['received', 'processing'])
        .count({ n: '*' })
        .first();
      if (Number(left?.n) === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const wallMs = Date.now() - started;
    const rows = (await deps
      .db('events')
      .whereIn('portal_id', ids)
      .select('received_at', 'processed_at')) as Array<{
      received_at: number | string;
      processed_at: number | string;
    }>;
    // Delivery → done, measured from when processing started (all were stored before).
    const lat = rows.map((r) => Number(r.processed_at) - started).sort((x, y) => x - y);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
    return {
      p50: q(0.5),
      p99: q(0.99),
      max: lat.at(-1) ?? 0,
      wallMs,
      aRequests: hang.requests.length,
      aRps: hang.requests.length / (wallMs / 1000),
    };
  } finally {
    await services.close(1000);
    await deps.close();
    await Promise.all([hang.close(), fast.close()]);
    tmp.cleanup();
  }
}

/**
 * `npm run bench -- fairness` (test/bench/README.md#fairness): portal A's target never answers and
 * A has 1,000 due events; portals B–E have 100 events each to a fast target. Prints B–E's time from
 * delivery to done (p50, p99, max) and A's throughput, against the same run without A.
 * Target: B–E's p99 within 2× of the run without A.
 */
export async function fairnessBench(): Promise<void> {
  const without = await run(false);
  const withA = await run(true);
  process.stdout.write(
    '\n| run | B–E p50 | B–E p99 | B–E max | B–E done after | A requests started | A req/s |\n|---|---|---|---|---|---|---|\n',
  );
  for (const [name, r] of [
    ['without A', without],
    ['with A (hanging target, 1,000 events)', withA],
  ] as const) {
    process.stdout.write(
      `| ${name} | ${fmt(r.p50)} ms | ${fmt(r.p99)} ms | ${fmt(r.max)} ms | ${fmt(r.wallMs)} ms | ${r.aRequests} | ${fmt(r.aRps, 1)} |\n`,
    );
  }
  const ratio = withA.p99 / Math.max(1, without.p99);
  process.stdout.write(
    `\nB–E p99 with A / without A: ${fmt(ratio, 2)} (target ≤ 2)${ratio <= 2 ? '' : '  MISSED'}\n`,
  );
}
