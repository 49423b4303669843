import { describe, expect, it } from '@jest/globals';
import {
  checkMap,
  eventsTriggeredBy,
  SAME_FIELD_PAIRS_LISTED,
} from '../../server/rules/check-map.js';
import type { Action, EventMap, Rule } from '../../server/rules/model.js';

/**
 * checkMap runs on the main thread at every view of the rules page (readers too), at every
 * save and in the CLI. Its loops and pairs must follow the size of the map, not its cube: a
 * map of 500 rules that all listen to and write the same event took 12 s of the main thread,
 * one of about 1,700 (under the 256 KB cap) about 9 minutes (a review's measurement).
 */

const EVENTS = ['ONCRMDEALUPDATE', 'ONCRMDEALADD', 'ONCRMLEADUPDATE', 'ONCRMDYNAMICITEMUPDATE_7'];
const STEPS: Action[] = [
  { type: 'bitrix', method: 'crm.deal.update', params: { id: '1', fields: { TITLE: 'x' } } },
  { type: 'bitrix', method: 'crm.deal.update', params: { id: '1', fields: { STAGE_ID: 'x' } } },
  { type: 'bitrix', method: 'crm.lead.update', params: { id: '1', fields: { TITLE: 'x' } } },
  { type: 'bitrix', method: 'crm.deal.add', params: { fields: { TITLE: 'x' } } },
  {
    type: 'bitrix',
    method: 'crm.item.update',
    params: { entityTypeId: 7, id: '1', fields: { title: 'x' } },
  },
  { type: 'bitrix', method: 'crm.item.update', params: { entityTypeId: 7, id: '1', fields: {} } },
  { type: 'sms', to: '+1', text: 'x' },
];

/** A small random map (a seeded generator: the same maps every run). */
function randomMap(seed: number): EventMap {
  let x = seed;
  const rnd = (n: number) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % n;
  };
  const rules: Rule[] = [];
  const n = 2 + rnd(7);
  for (let i = 0; i < n; i++) {
    const on = [...new Set([EVENTS[rnd(EVENTS.length)]!, EVENTS[rnd(EVENTS.length)]!])];
    const actions = Array.from({ length: 1 + rnd(2) }, () => STEPS[rnd(STEPS.length)]!);
    rules.push({ name: `r${i}`, on, actions });
  }
  return { rules };
}

const listens = (r: Rule, ev: string) => r.on.some((e) => e === ev || e.startsWith(`${ev}_`));

/** What the three graph warnings must name, worked out the slow and obvious way. */
function expected(map: EventMap) {
  const rules = map.rules;
  const n = rules.length;
  const causes = rules.map((r) =>
    r.actions.flatMap((a) => (a.type === 'bitrix' ? eventsTriggeredBy(a.method, a.params) : [])),
  );
  const edge = (i: number, j: number) => causes[i]!.some((ev) => listens(rules[j]!, ev));
  const reach = rules.map((_, i) => rules.map((__, j) => edge(i, j)));
  for (let k = 0; k < n; k++)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) if (reach[i]![k] && reach[k]![j]) reach[i]![j] = true;
  const self = rules.filter((_, i) => edge(i, i)).map((r) => r.name);
  const cycles: string[][] = [];
  const placed = new Set<number>();
  for (let i = 0; i < n; i++) {
    if (placed.has(i)) continue;
    const members = rules.flatMap((_, j) => (j === i || (reach[i]![j] && reach[j]![i]) ? [j] : []));
    if (members.length < 2) continue;
    members.forEach((m) => placed.add(m));
    cycles.push(members.map((m) => rules[m]!.name));
  }
  const fieldsOf = (r: Rule) =>
    new Set(
      r.actions.flatMap((a) =>
        a.type !== 'bitrix'
          ? []
          : eventsTriggeredBy(a.method, a.params)
              .filter((ev) => ev.endsWith('UPDATE'))
              .flatMap((ev) =>
                Object.keys((a.params?.fields as object | undefined) ?? {}).map(
                  (f) => `${ev} ${f.toUpperCase()}`,
                ),
              ),
      ),
    );
  const pairs: string[][] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const a = rules[i]!;
      const b = rules[j]!;
      if (!a.on.some((e) => b.on.includes(e))) continue;
      const fb = fieldsOf(b);
      if ([...fieldsOf(a)].some((f) => fb.has(f))) pairs.push([a.name, b.name]);
    }
  return { self, cycles, pairs };
}

describe('checkMap at scale', () => {
  it('names the same self-triggers, cycles and same-field pairs as a brute-force reading (300 maps)', () => {
    let cyclesSeen = 0;
    let pairsSeen = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const map = randomMap(seed);
      const got = checkMap(map);
      const want = expected(map);
      const of = (code: string) => got.filter((w) => w.code === code).map((w) => w.rules);
      expect(of('self-trigger').flat()).toEqual(want.self);
      expect(of('trigger-cycle')).toEqual(want.cycles);
      // A pair writing the same field of two record types is named once a type.
      expect([...new Set(of('same-field-write').map((r) => r.join('|')))]).toEqual(
        want.pairs.map((p) => p.join('|')),
      );
      cyclesSeen += want.cycles.length;
      pairsSeen += want.pairs.length;
    }
    // Control: the maps held what is being compared.
    expect(cyclesSeen).toBeGreaterThan(20);
    expect(pairsSeen).toBeGreaterThan(20);
  });

  it('checks 1,650 rules that all listen to and write one event in a blink, listing pairs up to its cap', () => {
    const rules: Rule[] = Array.from({ length: 1650 }, (_, i) => ({
      name: `rule ${i}`,
      on: ['ONCRMDEALUPDATE'],
      actions: [
        {
          type: 'bitrix',
          method: 'crm.deal.update',
          params: { id: '{{deal.ID}}', fields: { TITLE: 'x' } },
        },
      ],
    }));
    const map: EventMap = { rules };
    expect(JSON.stringify(map).length).toBeLessThan(256 * 1024); // under the map's cap
    const got = checkMap(map);
    const same = got.filter((w) => w.code === 'same-field-write');
    expect(same).toHaveLength(SAME_FIELD_PAIRS_LISTED + 1);
    expect(same.at(-1)).toMatchObject({ rules: [], message: expect.stringMatching(/^more pairs/) });
    expect(got.filter((w) => w.code === 'self-trigger')).toHaveLength(1650);
    const cycles = got.filter((w) => w.code === 'trigger-cycle');
    expect(cycles).toHaveLength(1);
    expect(cycles[0]!.rules).toHaveLength(1650);
  });
});

describe('the line past the listed pairs', () => {
  it('reads in Russian', async () => {
    const { translateMessage } = await import('../../server/ui/i18n-messages.js');
    const { englishIn } = await import('../helpers/english-words.js');
    const rules: Rule[] = Array.from({ length: 20 }, (_, i) => ({
      name: `rule ${i}`,
      on: ['ONCRMDEALUPDATE'],
      actions: [
        { type: 'bitrix', method: 'crm.deal.update', params: { id: '1', fields: { TITLE: 'x' } } },
      ],
    }));
    const more = checkMap({ rules }).find((w) => w.code === 'same-field-write' && !w.rules.length);
    expect(more).toBeDefined(); // 190 pairs, past the 100 listed
    const ru = translateMessage(more!.message, 'ru');
    expect(ru).toContain('100');
    expect(englishIn(ru)).toEqual([]);
  });
});
