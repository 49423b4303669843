import { effectiveMap, getRuleMap, saveRuleMap } from '../../server/rules/map-store.js';
import type { EventMap } from '../../server/rules/model.js';
import { createTestDeps } from '../helpers/test-deps.js';

/** A map of `n` rules about as large as the rule builder's and the API's own rules. */
function mapOf(n: number): EventMap {
  return {
    rules: Array.from({ length: n }, (_, i) => ({
      name: `rule ${i} ${'x'.repeat(40)}`,
      on: ['ONCRMDEALUPDATE'],
      when: [
        { field: 'STAGE_ID', becomes: 'WON' },
        { field: 'OPPORTUNITY', in: ['100', '200', '300'] },
      ],
      actions: [
        {
          type: 'http' as const,
          method: 'POST' as const,
          url: `https://erp.example/api/${i}`,
          body: { dealId: '{{deal.ID}}', note: 'y'.repeat(300) },
        },
        {
          type: 'bitrix' as const,
          method: 'crm.timeline.comment.add',
          params: { fields: { ENTITY_ID: '{{deal.ID}}', ENTITY_TYPE: 'deal', COMMENT: 'Sent' } },
        },
      ],
    })),
  };
}

/**
 * The rule map each event reads (server/rules/map-store.ts `effectiveMap`: a version query,
 * the map parsed once per write) against reading and parsing it per event as before
 * (`getRuleMap`), on one SQLite file, main-thread time per read, in alternating rounds
 * (test/bench/README.md#maps).
 */
export async function mapsBench(args: { reads: number; rounds: number }): Promise<void> {
  const t = await createTestDeps({ LOG_LEVEL: 'silent' });
  const { db } = t.deps;
  try {
    const now = t.clock.now();
    const sizes = [
      { memberId: 'large', rules: 300 },
      { memberId: 'small', rules: 3 },
    ];
    for (const s of sizes) await saveRuleMap(db, s.memberId, mapOf(s.rules), now);
    const ways = {
      'read and parsed per event (before)': (m: string) => getRuleMap(db, m),
      'version query, parsed once (now)': (m: string) => effectiveMap(db, m),
    };
    const rows: string[] = [];
    for (const s of sizes) {
      const chars = JSON.stringify(await getRuleMap(db, s.memberId)).length;
      const times: Record<string, number[]> = {};
      for (let round = 0; round < args.rounds; round++) {
        for (const [name, read] of Object.entries(ways)) {
          const started = performance.now();
          for (let i = 0; i < args.reads; i++) await read(s.memberId);
          (times[name] ??= []).push(((performance.now() - started) * 1000) / args.reads);
        }
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const [before, after] = Object.values(times).map(median) as [number, number];
      for (const [name, xs] of Object.entries(times)) {
        rows.push(
          `${s.rules} rules (${Math.round(chars / 1024)} KB) | ${name} | ${median(xs).toFixed(0)} µs (rounds: ${xs.map((x) => x.toFixed(0)).join(', ')})`,
        );
      }
      rows.push(`${s.rules} rules | before / now | ${(before / after).toFixed(1)}×`);
    }
    process.stdout.write(
      `\nRule map per event, ${args.reads} reads a round, ${args.rounds} rounds, medians:\n${rows.join('\n')}\n`,
    );
  } finally {
    await t.close();
  }
}
