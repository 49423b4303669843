import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildListener } from '../../server/start.js';
import { uiRoutes } from '../../server/ui/routes.js';
import { openDb } from '../../db/connect.js';
import { rebuildRollups } from '../../db/stores/rollups.js';
import { claimFairly } from '../../db/stores/jobs.js';
import { storedAdminSession } from '../helpers/stored-session.js';
import { benchPortal, bulkLoad } from './ui.js';

/**
 * Kept prepared statements (db/connect.ts keepStatements) against knex preparing every query
 * anew: the main thread's CPU per dashboard view and per worker claim, on the same SQLite
 * file through two knex instances, in alternating rounds (test/bench/README.md#statements).
 */
export async function statementsBench(args: { events: number; rounds: number }): Promise<void> {
  const { t, deps, now, portal } = await benchPortal();
  bulkLoad(t.dbFile, portal, args.events, now);
  await rebuildRollups(deps.db, now);
  const cookie = await storedAdminSession(
    deps.db,
    deps.config.sessionSecret,
    { id: portal.id, memberId: portal.member_id },
    now,
  );
  const fresh = openDb({ client: 'sqlite', filename: t.dbFile }, { keepStatements: false });
  const variants = [
    { name: 'kept statements', deps },
    { name: 'prepared anew (knex)', deps: { ...deps, db: fresh } },
  ];
  const servers = await Promise.all(
    variants.map(async (v) => {
      const server = http.createServer(
        buildListener(v.deps, { routes: [uiRoutes(v.deps)], fast: [] }),
      );
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { ...v, server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    }),
  );
  const cpu: Record<string, { view: number[]; claim: number[] }> = {};
  for (const s of servers) cpu[s.name] = { view: [], claim: [] };
  /** CPU µs of this process (server and client) per call of `f`, over `n` calls. */
  const cpuPer = async (n: number, f: () => Promise<unknown>) => {
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) await f();
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / n;
  };
  try {
    for (let round = 0; round < args.rounds; round++) {
      for (const s of round % 2 === 0 ? servers : [...servers].reverse()) {
        cpu[s.name]!.view.push(
          await cpuPer(50, async () => {
            const res = await fetch(`${s.base}/ui`, { headers: { cookie } });
            await res.text();
            if (res.status !== 200) throw new Error(`/ui answered ${res.status}`);
          }),
        );
        // A worker's claim that finds nothing due: the query of every idle round.
        cpu[s.name]!.claim.push(
          await cpuPer(500, () =>
            claimFairly(s.deps.db, {
              workerId: 'bench',
              now: 1,
              limit: 4,
              holding: new Map(),
              cap: 4,
              after: 0,
            }),
          ),
        );
      }
    }
  } finally {
    for (const s of servers) await new Promise((r) => s.server.close(r));
    await fresh.destroy();
    await t.close();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const [kept, anew] = servers.map((s) => cpu[s.name]!);
  process.stdout.write(
    `${args.events.toLocaleString('en')} events; ${args.rounds} alternating rounds of 50 dashboard views and 500 empty claims; CPU of this process (server and client), median of the rounds\n\n` +
      '| | dashboard view, CPU µs | empty claim, CPU µs |\n|---|---|---|\n' +
      servers
        .map((s) => {
          const c = cpu[s.name]!;
          return `| ${s.name} | ${median(c.view).toFixed(0)} | ${median(c.claim).toFixed(0)} |`;
        })
        .join('\n') +
      `\n| kept / anew | ${(median(kept!.view) / median(anew!.view)).toFixed(2)} | ${(median(kept!.claim) / median(anew!.claim)).toFixed(2)} |\n`,
  );
}
