import { execFileSync } from 'node:child_process';
import http from 'node:http';
import Database from 'better-sqlite3';
import { DEFAULT_BUSY_TIMEOUT_MS } from '../../../db/connect.js';
import type { SpawnedServer } from '../../helpers/spawn-server.js';
import { prepareInstalledApp, type InstalledApp } from '../lib/installed-app.js';
import {
  BASE_TS,
  dealUpdate,
  fmt,
  postDelivery,
  sleep,
  waitFor,
  type DeliveryAnswer,
} from '../lib/deliveries.js';
import { wonToTarget } from '../lib/rules.js';
import { repeatedAfterSuccess, startTarget } from '../lib/target.js';
import type { ReliabilityContext, Row, Scenario } from '../types.js';

/** The intake writer's SQLite busy timeout: a lock held longer makes its writes fail. */
const BUSY_TIMEOUT_MS = DEFAULT_BUSY_TIMEOUT_MS;
/**
 * Steps in flight when writes begin to fail may have been sent without their success being
 * recorded; they are sent again under the same Idempotency-Key. At most one per worker slot.
 */
const CONCURRENCY = 4;

interface Sent {
  n: number;
  dealId: string;
  sentAt: number;
  answer: DeliveryAnswer;
}

/**
 * Posts deliveries from `senders` parallel clients until `stop()` says so; each delivery is
 * a distinct update (its own ts) of one of the deals.
 */
function flood(
  app: InstalledApp,
  server: SpawnedServer,
  deals: string[],
  next: { n: number },
  senders: number,
  pauseMs: number,
) {
  const url = new URL('/b24/events', server.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: senders });
  const sent: Sent[] = [];
  let running = true;
  const loops = Array.from({ length: senders }, async () => {
    while (running) {
      const n = ++next.n;
      const dealId = deals[n % deals.length]!;
      const sentAt = performance.now();
      const answer = await postDelivery(url, dealUpdate(app.who, dealId, n), agent);
      sent.push({ n, dealId, sentAt, answer });
      if (pauseMs) await sleep(pauseMs);
    }
  });
  return {
    sent,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

interface FaultFigures {
  /** /healthz statuses: during the fault, then after recovery. */
  health: number[];
  /** Deliveries in flight while the fault lasted (answered whenever). */
  during: Sent[];
  /** Sent after it began and answered 200 before it ended: a commit that cannot happen. */
  ackedWhileFault: number;
  /** Seconds from the end of the fault to the first 200 for a delivery sent after it. */
  recoverySec: number | null;
}

/** Runs `fault` (which resolves when it is over) under a flood; measures what was answered. */
async function underFault(
  app: InstalledApp,
  server: SpawnedServer,
  deals: string[],
  next: { n: number },
  all: Sent[],
  fault: (probe: () => Promise<void>) => Promise<{ began: number; ended: number }>,
  senders: number,
  pauseMs: number,
  afterMs: number,
): Promise<FaultFigures> {
  const f = flood(app, server, deals, next, senders, pauseMs);
  const health: number[] = [];
  const { began, ended } = await fault(async () => {
    health.push(await healthz(server));
  });
  const recovered = await waitFor(
    () => f.sent.some((s) => s.sentAt >= ended && s.answer.status === 200),
    15_000,
    10,
  );
  await sleep(afterMs);
  await f.stop();
  health.push(await healthz(server));
  all.push(...f.sent);
  // In flight at some point of the fault: sent before it ended, answered after it began.
  const during = f.sent.filter((s) => s.sentAt <= ended && s.answer.at >= began);
  const ackedWhileFault = during.filter((s) => s.answer.status === 200 && s.answer.at < ended);
  const first = f.sent
    .filter((s) => s.sentAt >= ended && s.answer.status === 200)
    .sort((a, b) => a.answer.at - b.answer.at)[0];
  return {
    health,
    during,
    ackedWhileFault: ackedWhileFault.length,
    recoverySec: recovered && first ? (first.answer.at - ended) / 1000 : null,
  };
}

function describe(f: FaultFigures): { text: string; ok: boolean } {
  const by = (p: (s: Sent) => boolean) => f.during.filter(p).length;
  const refused = by((s) => s.answer.status === 503 && s.answer.retryAfter !== undefined);
  // Sent during the fault, committed once it cleared: a true acknowledgement.
  const later = by((s) => s.answer.status === 200);
  const other = f.during.length - refused - later;
  const rec = f.recoverySec === null ? 'never' : `${f.recoverySec.toFixed(1)} s`;
  const [sick, well] = f.health;
  return {
    text:
      `in flight ${fmt(f.during.length)} · 503 + Retry-After ${fmt(refused)} · 200 while faulty ${f.ackedWhileFault}` +
      ` · 200 after it cleared ${later} · other ${other} · 200 again ${rec} after` +
      ` · /healthz ${sick} then ${well}`,
    ok:
      refused > 0 &&
      f.ackedWhileFault === 0 &&
      other === 0 &&
      f.recoverySec !== null &&
      sick === 503 &&
      well === 200,
  };
}

async function healthz(server: SpawnedServer): Promise<number> {
  try {
    const res = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(10_000) });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}

/** Sets the soft file-size limit of a running process (util-linux prlimit; no privileges). */
function setFileSizeLimit(pid: number, bytes: number | 'unlimited') {
  execFileSync('prlimit', ['--pid', String(pid), `--fsize=${bytes}:unlimited`]);
}

/**
 * Database faults under load, on the real server process: (1) another connection holds the
 * SQLite write lock longer than the busy timeout; (2) the disk refuses writes (the process's
 * file-size limit drops to 1 byte, so every write to the database and its WAL fails, as on
 * a full disk). While a fault lasts the intake must answer 503 with Retry-After, never 200;
 * afterwards it answers 200 again without a restart, every acknowledged delivery is stored
 * and processed, and no step recorded as succeeded is sent again.
 */
export const scenario: Scenario = async (ctx: ReliabilityContext): Promise<Row[]> => {
  const full = ctx.scale === 'full';
  const lockMs = full ? 20_000 : BUSY_TIMEOUT_MS + 5000;
  const diskMs = full ? 20_000 : 2500;
  /** Load before the faults and after each (the backlog the same process works off). */
  const loadMs = full ? 3000 : 300;
  const target = await startTarget();
  const app = await prepareInstalledApp(ctx, wonToTarget(target.url), {
    WORKER_CONCURRENCY: String(CONCURRENCY),
    RETRY_BASE_SECONDS: '1',
  });
  let server: SpawnedServer | undefined;
  try {
    const deals: string[] = [];
    for (let i = 0; i < (full ? 100 : 30); i++)
      deals.push((await app.portal.addDeal({ TITLE: `Faults ${i}`, STAGE_ID: 'WON' })).id);
    server = await app.spawn({ LOG_LEVEL: 'warn' });
    const next = { n: 0 };
    const all: Sent[] = [];
    const alive = () => server!.proc.exitCode === null && server!.proc.signalCode === null;

    // Warm up: the intake answers 200 before any fault.
    const warm = flood(app, server, deals, next, 4, 5);
    await sleep(loadMs);
    await warm.stop();
    all.push(...warm.sent);

    const lock = await underFault(
      app,
      server,
      deals,
      next,
      all,
      async (probe) => {
        const holder = new Database(app.dbFile);
        holder.pragma('busy_timeout = 10000');
        holder.exec('BEGIN EXCLUSIVE');
        const began = performance.now();
        await sleep(lockMs - 1000);
        await probe();
        await sleep(1000);
        holder.exec('COMMIT');
        const ended = performance.now();
        holder.close();
        return { began, ended };
      },
      8,
      20,
      loadMs,
    );
    const disk = await underFault(
      app,
      server,
      deals,
      next,
      all,
      async (probe) => {
        setFileSizeLimit(server!.proc.pid!, 1);
        const began = performance.now();
        await sleep(diskMs - 500);
        await probe();
        await sleep(500);
        setFileSizeLimit(server!.proc.pid!, 'unlimited');
        return { began, ended: performance.now() };
      },
      8,
      20,
      loadMs,
    );

    // Every acknowledged delivery stored, and the backlog worked off by the same process.
    const acked = all.filter((s) => s.answer.status === 200);
    const db = app.openDb();
    const terminal = ['processed', 'failed', 'skipped'];
    const drained = await waitFor(
      async () => {
        const r = (await db('events')
          .where('event', 'ONCRMDEALUPDATE')
          .whereNotIn('status', terminal)
          .count({ n: '*' })
          .first()) as { n: number };
        return Number(r.n) === 0;
      },
      full ? 180_000 : 45_000,
      250,
    );
    const rows = (await db('events').where('event', 'ONCRMDEALUPDATE').select('ts', 'status')) as {
      ts: number;
      status: string;
    }[];
    const storedTs = new Set(rows.map((r) => Number(r.ts)));
    const lost = acked.filter((s) => !storedTs.has(BASE_TS + s.n)).length;
    const processed = rows.filter((r) => r.status === 'processed').length;
    const restarts = alive() ? 0 : 1;
    // Not worked off: what the events and jobs still wait in, and the server's last words,
    // so a failure in a CI run can be told apart from a slow machine.
    let waiting = '';
    if (!drained) {
      const count = async (table: string, cols: string[]) =>
        (
          (await db(table).groupBy(cols).select(cols).count({ n: '*' })) as Array<
            Record<string, unknown>
          >
        )
          .map((r) => `${cols.map((c) => String(r[c])).join('/')} ${String(r.n)}`)
          .join(', ');
      waiting = ` · events ${await count('events', ['event', 'status'])} · jobs ${await count('jobs', ['type', 'status'])}`;
      // The refused deliveries of the disk fault (one line each) are left out.
      const tail = (t: string) =>
        t
          .split('\n')
          .filter((l) => !l.includes('could not store an event delivery'))
          .slice(-40)
          .join('\n');
      process.stderr.write(
        `db-faults: backlog not worked off; server output:\n${tail(server.stdout())}\n${tail(server.stderr())}\n`,
      );
    }
    const repeated = await repeatedAfterSuccess(target, db);
    const resent = target.duplicates();
    for (const s of all.slice(0, 50)) ctx.pages.push(s.answer.body);

    const l = describe(lock);
    const d = describe(disk);
    return [
      {
        area: 'Faults',
        check: `Database locked by another connection for ${lockMs / 1000} s (busy timeout ${BUSY_TIMEOUT_MS / 1000} s), under load`,
        measured: l.text,
        expected: '503 while locked, never 200; /healthz 503; 200 again, no restart',
        pass: l.ok && alive(),
      },
      {
        area: 'Faults',
        check: `Disk full for ${diskMs / 1000} s (every file write refused), under load`,
        measured: d.text,
        expected: '503 while full, never 200; /healthz 503; 200 again, no restart',
        pass: d.ok && alive(),
      },
      {
        area: 'Faults',
        check: 'After both faults: acknowledged deliveries, processing, steps sent',
        measured:
          `acknowledged ${fmt(acked.length)} · lost ${lost} · processed ${fmt(processed)}/${fmt(rows.length)}` +
          ` · restarts ${restarts} · steps repeated after recorded success ${repeated}` +
          ` · in-flight steps re-sent with their key ${resent}${waiting}`,
        expected: `lost 0, all processed, restarts 0, repeated 0, re-sent ≤ ${2 * CONCURRENCY}`,
        pass:
          drained &&
          lost === 0 &&
          processed === rows.length &&
          target.accepted.size === rows.length &&
          restarts === 0 &&
          repeated === 0 &&
          resent <= 2 * CONCURRENCY,
      },
    ];
  } finally {
    await server?.stop('SIGTERM');
    await app.close();
    await target.close();
  }
};
