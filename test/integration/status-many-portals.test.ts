import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { statusCommand } from '../../server/cli/commands.js';
import { statusFigures, updateEvent } from '../../db/stores/events.js';
import { writeIntakeBatch } from '../../db/stores/intake.js';
import { recoveredCounts } from '../../db/stores/recovery.js';
import { slaCountsOf } from '../../db/stores/sla.js';
import { insertRuleMatches, setRuleMatchStatus } from '../../db/stores/processing.js';
import { slaByPeriod } from '../../server/alerts/sla.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import type { EventMap } from '../../server/rules/model.js';
import { intakeRow, seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const HOUR = 3600_000;

/**
 * `b24hooks status --json` with many portals installed: every portal's figures in a few
 * queries, the same figures as reading each portal on its own.
 */
describe('status of many portals', () => {
  let t: TestDeps;
  let portals: TestPortal[];

  beforeEach(async () => {
    t = await createTestDeps();
    portals = [];
    for (let i = 0; i < 24; i++) portals.push(await seedPortal(t.deps));
    const now = t.clock.now().getTime();
    let deal = 0;
    // Portals in every kind of state: none, backlog of hours ago, unverified, offline,
    // processed (processing times), failed, processing.
    for (const [i, p] of portals.entries()) {
      if (i % 6 === 0) continue;
      const a = intakeRow(p, ++deal, { receivedAt: now - (i % 4) * HOUR - 60_000 });
      const b = intakeRow(p, ++deal, { receivedAt: now - 30_000 });
      if (i % 5 === 1) a.event.source = 'offline';
      if (i % 4 === 2) {
        b.event.status = 'unverified';
        b.job = null;
      }
      await writeIntakeBatch(t.deps.db, [a, b], now);
    }
    const ids = (await t.deps.db('events').orderBy('id').pluck('id')) as number[];
    for (const [k, id] of ids.entries()) {
      if (k % 3 === 0) {
        await updateEvent(t.deps.db, Number(id), {
          status: 'processed',
          processing_started_at: now - 2000,
          processed_at: now - 1000 + k * 10,
        });
      } else if (k % 7 === 1) {
        await updateEvent(t.deps.db, Number(id), { status: 'failed', processed_at: now - 500 });
      } else if (k % 7 === 2) {
        await updateEvent(t.deps.db, Number(id), { status: 'processing' });
      }
    }
    await saveRuleMap(t.deps.db, portals[3]!.memberId, slaMap('own'), t.clock.now());
  });
  afterEach(async () => {
    await t.close();
  });

  const slaMap = (name: string) =>
    ({
      rules: [
        {
          name,
          on: ['ONCRMDEALUPDATE'],
          actions: [{ type: 'http', method: 'POST', url: 'https://example.com/x' }],
          slaSeconds: 10,
        },
      ],
    }) as unknown as EventMap;

  const status = async () => {
    let out = '';
    const io = { out: (s: string) => (out += s), err: () => {} };
    const code = await statusCommand({ deps: t.deps, flags: {}, positionals: [], json: true, io });
    expect(code).toBe(0);
    return JSON.parse(out) as {
      portals: Array<Record<string, unknown>>;
      sla: Array<{ rule: string; period: string }>;
    };
  };

  it('gives each portal the figures its own lookups give', async () => {
    await saveRuleMap(t.deps.db, undefined, slaMap('default'), t.clock.now());
    const doc = await status();
    const now = t.clock.now();
    expect(doc.portals.map((p) => p.memberId)).toEqual(portals.map((p) => p.memberId));
    for (const p of portals) {
      const r = await recoveredCounts(t.deps.db, p.row.id);
      expect(doc.portals.find((x) => x.memberId === p.memberId)).toEqual({
        memberId: p.memberId,
        domain: p.domain,
        ...(await statusFigures(t.deps.db, now, p.row.id)),
        recovered: r.offline + r.sweep,
      });
    }
    // Control: the states above are all there.
    const keys = ['backlog', 'oldestPendingSeconds', 'avgProcessingMs', 'failed', 'unverified'];
    for (const k of [...keys, 'recovered', 'processing']) {
      expect(doc.portals.some((p) => Number(p[k]) > 0)).toBe(true);
    }
    expect(doc.portals.some((p) => p.received === 0 && p.processed === 0)).toBe(true);
    expect(doc.sla.map((f) => `${f.rule} ${f.period}`).sort()).toEqual([
      'default 24h',
      'default 7d',
      'own 24h',
      'own 7d',
    ]);
  });

  const queriesOf = async (run: () => Promise<unknown>) => {
    let queries = 0;
    const onQuery = () => queries++;
    t.deps.db.on('query', onQuery);
    try {
      await run();
    } finally {
      t.deps.db.off('query', onQuery);
    }
    return queries;
  };

  it('reads the SLA figures of a rule in the default map in the same few queries for more portals', async () => {
    await saveRuleMap(t.deps.db, undefined, slaMap('default'), t.clock.now());
    const first = await queriesOf(status);
    for (let i = 0; i < 24; i++) portals.push(await seedPortal(t.deps));
    // Before: three queries per portal applying the rule and period (about 300 here, 30,000
    // with 5,000 portals). Now the rule's portals are read together.
    expect(await queriesOf(status)).toBe(first);
    expect(first).toBeLessThanOrEqual(30);
  });

  it('gives each rule the SLA figures of its portals’ own dashboards, summed', async () => {
    await saveRuleMap(t.deps.db, undefined, slaMap('default'), t.clock.now());
    // Every event matched its portal's rule: some done, some skipped, some still waiting.
    const events = (await t.deps.db('events').orderBy('id').select('id', 'portal_id')) as Array<{
      id: number;
      portal_id: number;
    }>;
    for (const [k, e] of events.entries()) {
      const rule = Number(e.portal_id) === portals[3]!.row.id ? 'own' : 'default';
      await insertRuleMatches(
        t.deps.db,
        [
          {
            event_id: Number(e.id),
            rule_name: rule,
            rule_index: 0,
            reason: null,
            previous: null,
            // Judged against 40 s when it finished (the map's SLA may change afterwards).
            sla_ms: 40_000,
          },
        ],
        t.clock.now().getTime(),
      );
      if (k % 4 !== 3) {
        const status = k % 4 === 2 ? 'skipped' : 'done';
        await setRuleMatchStatus(t.deps.db, Number(e.id), rule, status, null);
      }
    }
    const all = await slaByPeriod(t.deps);
    const sums = new Map<string, { total: number; withinSla: number }>();
    for (const p of portals) {
      for (const f of await slaByPeriod(t.deps, p.memberId)) {
        const sum = sums.get(`${f.rule} ${f.period}`) ?? { total: 0, withinSla: 0 };
        sum.total += f.total;
        sum.withinSla += f.withinSla;
        sums.set(`${f.rule} ${f.period}`, sum);
      }
    }
    const figures = all.map((f) => [`${f.rule} ${f.period}`, f.total, f.withinSla]);
    const summed = [...sums].map(([k, f]) => [k, f.total, f.withinSla]);
    const byKey = (a: unknown[], b: unknown[]) => (String(a[0]) < String(b[0]) ? -1 : 1);
    expect(figures.sort(byKey)).toEqual(summed.sort(byKey));
    // Past 500 portals every portal's rows are read (not named): the same figures.
    const now = t.clock.now().getTime();
    const pairs = portals.map((p) => ({
      portalId: p.row.id,
      rule: { name: p === portals[3] ? 'own' : 'default', slaSeconds: 10 },
    }));
    const idle = Array.from({ length: 500 }, (_, i) => ({
      portalId: 100_000 + i,
      rule: { name: 'default', slaSeconds: 10 },
    }));
    const many = await slaCountsOf(t.deps.db, [...pairs, ...idle], now - 24 * HOUR, now);
    const one = [];
    for (const p of pairs) one.push(...(await slaCountsOf(t.deps.db, [p], now - 24 * HOUR, now)));
    expect(many.slice(0, pairs.length)).toEqual(one);
    expect(one.some((c) => c.total > 0)).toBe(true);
    // Control: finished, within and pending events are all counted.
    expect(all.some((f) => f.withinSla > 0 && f.total > f.withinSla)).toBe(true);
  });

  it('reads one portal’s SLA figures (its dashboard) without reading every portal', async () => {
    await saveRuleMap(t.deps.db, undefined, slaMap('default'), t.clock.now());
    const read: string[] = [];
    const onQuery = (q: { sql: string }) => {
      if (/from [`"]portals[`"]/.test(q.sql)) read.push(q.sql);
    };
    t.deps.db.on('query', onQuery);
    let figures;
    try {
      figures = await slaByPeriod(t.deps, portals[3]!.memberId);
    } finally {
      t.deps.db.off('query', onQuery);
    }
    expect(figures.map((f) => `${f.rule} ${f.period}`)).toEqual(['own 24h', 'own 7d']);
    // Before: every portal's row at every view of any portal's dashboard.
    expect(read.length).toBeGreaterThan(0);
    for (const sql of read) expect(sql).toMatch(/where [`"]member_id[`"] = /);
    expect(await slaByPeriod(t.deps, 'no-such-portal')).toEqual([]);
  });

  it('reads the figures in a few queries however many portals there are', async () => {
    let queries = 0;
    const onQuery = () => queries++;
    t.deps.db.on('query', onQuery);
    try {
      await status();
    } finally {
      t.deps.db.off('query', onQuery);
    }
    // Before: about eleven for each of the 24 portals (265 here). Now a fixed number (the SLA
    // figures of the one portal whose rule has an SLA among them).
    expect(queries).toBeLessThanOrEqual(30);
  });
});
