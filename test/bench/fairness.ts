import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
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

/**
 * Portal A's large steps: the first step's answer (about 9,000 characters) written 600 times
 * into the second step's body, about 5.2 Mi characters filled in per event on the main thread.
 */
const large = (url: string): EventMap => ({
  rules: [
    {
      name: 'large',
      on: ['ONCRMDEALDELETE'],
      actions: [
        { type: 'http', name: 'first', method: 'POST', url: `${url}/first`, body: {} },
        {
          type: 'http',
          name: 'second',
          method: 'POST',
          url: `${url}/second`,
          body: Object.fromEntries(
            Array.from({ length: 600 }, (_, i) => [`f${i}`, '{{steps.first.response}}']),
          ),
        },
      ],
    },
  ],
});

/**
 * A stand-in for portal A's large steps that keeps nothing of what it is sent (the test sink
 * keeps every body: 5 MB each). `/first` answers about 9,000 characters; `seconds()` counts
 * the large requests that arrived whole.
 */
async function startDiscardingSink() {
  let seconds = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/second') seconds++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.url === '/first' ? { pad: 'x'.repeat(9000) } : { ok: true }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seconds: () => seconds,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface RunResult {
  p50: number;
  p99: number;
  max: number;
  wallMs: number;
  aRequests: number;
  aRps: number;
  /** The main thread's event-loop delay while B–E ran (ms): p99 and max. */
  loopP99: number;
  loopMax: number;
}

async function run(
  a: 'none' | 'hang' | 'large',
  env: Record<string, string> = {},
): Promise<RunResult> {
  const tmp = tempDir('b24hooks-fair-');
  const hang = await startHttpSink(() => ({ delayMs: 60 * 60_000 }));
  const fast = await startHttpSink();
  const sizable = await startDiscardingSink();
  const config = testConfig(tmp.dir, {
    ACTION_PRIVATE_HOSTS: '127.0.0.1',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const deps: Deps = await createDeps(config, { clock: systemClock, logger: silentLogger() });
  const services = createServices(deps);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  try {
    const at = new Date();
    const others = [];
    if (a !== 'none') {
      const p = await seedPortal(deps);
      const portal = { id: p.row.id, memberId: p.memberId };
      const map = a === 'hang' ? forward(`${hang.url}/hang`) : large(sizable.url);
      await saveRuleMap(deps.db, p.memberId, map, at);
      await addEvents(deps.db, portal, 1000);
    }
    for (let i = 0; i < 4; i++) {
      const p = await seedPortal(deps);
      await saveRuleMap(deps.db, p.memberId, forward(`${fast.url}/fast`), at);
      others.push({ id: p.row.id, memberId: p.memberId });
    }
    for (const p of others) await addEvents(deps.db, p, 100);
    const started = Date.now();
    loop.enable();
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
    loop.disable();
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
      aRequests: a === 'large' ? sizable.seconds() : hang.requests.length,
      aRps: (a === 'large' ? sizable.seconds() : hang.requests.length) / (wallMs / 1000),
      // The histogram counts how late its 1 ms timer fired, that millisecond included.
      loopP99: Math.max(0, loop.percentile(99) / 1e6 - 1),
      loopMax: Math.max(0, loop.max / 1e6 - 1),
    };
  } finally {
    await services.close(1000);
    await deps.close();
    await Promise.all([hang.close(), fast.close(), sizable.close()]);
    tmp.cleanup();
  }
}

/**
 * `npm run bench -- fairness` (test/bench/README.md#fairness): portal A's target never answers and
 * A has 1,000 due events; portals B–E have 100 events each to a fast target. Prints B–E's time from
 * delivery to done (p50, p99, max) and A's throughput, against the same run without A.
 * Target: B–E's p99 within 2× of the run without A. Then A's steps are large instead (about
 * 5.2 Mi characters filled in per event), with PORTAL_STEP_MB_PER_SECOND off and at its
 * default: B–E's times and the main thread's event-loop delay while they ran.
 */
export async function fairnessBench(): Promise<void> {
  const without = await run('none');
  const withA = await run('hang');
  const largeOff = await run('large', { PORTAL_STEP_MB_PER_SECOND: '0' });
  const largeOn = await run('large');
  process.stdout.write(
    '\n| run | B–E p50 | B–E p99 | B–E max | B–E done after | A requests started | A req/s | loop delay p99 / max |\n|---|---|---|---|---|---|---|---|\n',
  );
  for (const [name, r] of [
    ['without A', without],
    ['with A (hanging target, 1,000 events)', withA],
    ['with A (large steps, 1,000 events), PORTAL_STEP_MB_PER_SECOND=0 (off)', largeOff],
    ['with A (large steps, 1,000 events), PORTAL_STEP_MB_PER_SECOND=2 (default)', largeOn],
  ] as const) {
    process.stdout.write(
      `| ${name} | ${fmt(r.p50)} ms | ${fmt(r.p99)} ms | ${fmt(r.max)} ms | ${fmt(r.wallMs)} ms | ${r.aRequests} | ${fmt(r.aRps, 1)} | ${fmt(r.loopP99, 1)} / ${fmt(r.loopMax, 1)} ms |\n`,
    );
  }
  const ratio = withA.p99 / Math.max(1, without.p99);
  process.stdout.write(
    `\nB–E p99 with A / without A: ${fmt(ratio, 2)} (target ≤ 2)${ratio <= 2 ? '' : '  MISSED'}\n`,
  );
  const large = largeOn.p99 / Math.max(1, without.p99);
  process.stdout.write(
    `B–E p99 with A's large steps (budget on) / without A: ${fmt(large, 2)} (off: ${fmt(largeOff.p99 / Math.max(1, without.p99), 2)})\n`,
  );
}
