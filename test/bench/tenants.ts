import { performance } from 'node:perf_hooks';
import { statusCommand } from '../../server/cli/commands.js';
import { createAlertMonitor } from '../../server/alerts/monitor.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import type { EventMap } from '../../server/rules/model.js';
import { updateEvent } from '../../db/stores/events.js';
import { writeIntakeBatch } from '../../db/stores/intake.js';
import { intakeRow, seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { createTestDeps } from '../helpers/test-deps.js';
import { fmt } from './util.js';

const slaMap = (name: string, slaSeconds: number) =>
  ({
    rules: [
      {
        name,
        on: ['ONCRMDEALUPDATE'],
        actions: [{ type: 'http', method: 'POST', url: 'https://example.com/x' }],
        slaSeconds,
      },
    ],
  }) as unknown as EventMap;

/**
 * Thousands of installed portals, nearly all idle, in one SQLite file: what `status --json`
 * and an alert check cost the process that runs them (queries, wall time, CPU), with no
 * SLA rule in the default map and then with one (test/bench/README.md#tenants).
 */
export async function tenantsBench(args: { portals: number; rounds: number }): Promise<void> {
  const t = await createTestDeps({ ALERT_BACKLOG_THRESHOLD: '100000' });
  const db = t.deps.db;
  const started = performance.now();
  const portals: TestPortal[] = [];
  for (let i = 0; i < args.portals; i++) portals.push(await seedPortal(t.deps));
  await db('portals').update({
    events_bound: JSON.stringify(['ONCRMDEALADD', 'ONCRMDEALUPDATE', 'ONAPPINSTALL']),
  });
  // Two deliveries for six portals in seven, some hours old, some offline or unverified;
  // then some processed, failed or processing; one portal in a hundred has an SLA rule.
  const now = t.clock.now().getTime();
  let deal = 0;
  for (let i = 0; i < portals.length; i += 250) {
    const rows = portals.slice(i, i + 250).flatMap((p, k) => {
      const n = i + k;
      if (n % 7 === 3) return [];
      const a = intakeRow(p, ++deal, { receivedAt: now - 3600_000 * (n % 5) - 60_000 });
      const b = intakeRow(p, ++deal, { receivedAt: now - 30_000 });
      if (n % 5 === 1) a.event.source = 'offline';
      if (n % 11 === 2) {
        b.event.status = 'unverified';
        b.job = null;
      }
      return [a, b];
    });
    await writeIntakeBatch(db, rows, now - 30_000);
  }
  const ids = (await db('events').orderBy('id').pluck('id')) as number[];
  for (const [k, id] of ids.entries()) {
    if (k % 2 === 0) {
      await updateEvent(db, Number(id), {
        status: 'processed',
        processing_started_at: now - 2000,
        processed_at: now - 1000,
      });
    } else if (k % 20 === 1) {
      await updateEvent(db, Number(id), { status: 'failed', processed_at: now - 5000 });
    } else if (k % 20 === 3) await updateEvent(db, Number(id), { status: 'processing' });
  }
  for (const [k, p] of portals.entries()) {
    if (k % 100 === 5) await saveRuleMap(db, p.memberId, slaMap('own', 10), t.clock.now());
  }
  process.stdout.write(
    `${fmt(args.portals)} portals, ${fmt(deal)} events seeded in ` +
      `${fmt((performance.now() - started) / 1000, 1)} s (${t.dbFile})\n\n`,
  );

  const measure = async (what: string, run: () => Promise<unknown>) => {
    let queries = 0;
    const onQuery = () => queries++;
    db.on('query', onQuery);
    const t0 = performance.now();
    const cpu = process.cpuUsage();
    try {
      await run();
    } finally {
      db.off('query', onQuery);
    }
    const c = process.cpuUsage(cpu);
    const row = [what, fmt(queries), fmt(performance.now() - t0), fmt((c.user + c.system) / 1000)];
    process.stdout.write(`| ${row.join(' | ')} |\n`);
  };
  process.stdout.write('| run | queries | wall ms | CPU ms |\n| --- | --- | --- | --- |\n');
  const io = { out: () => {}, err: () => {} };
  const status = async (label: string) => {
    for (let r = 1; r <= args.rounds; r++) {
      await measure(`${label} #${r}`, () =>
        statusCommand({ deps: t.deps, flags: {}, positionals: [], json: true, io }),
      );
    }
  };
  await status('status --json');
  const monitor = createAlertMonitor(t.deps);
  const checks = async (label: string) => {
    // The first check stores every portal's states; the ones after it are the steady cost.
    for (let r = 0; r <= args.rounds; r++) {
      await measure(r === 0 ? `${label}, first` : `${label} #${r}`, () => monitor.checkOnce());
      t.clock.advance(30_000);
    }
  };
  await checks('alert check');
  await saveRuleMap(db, undefined, slaMap('default', 5), t.clock.now());
  await checks('alert check, SLA rule in the default map');
  await status('status --json, SLA rule in the default map');
  await t.close();
}
