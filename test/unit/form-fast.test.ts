import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { PARSE_LIMITS, parseForm } from '../../server/intake/event-body.js';
import { parseSimpleForm } from '../../server/intake/form-fast.js';

/** A small seeded PRNG, so a failure names a body that can be reproduced. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: string };
const outcome = (f: () => unknown): Outcome => {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
};

/** FORM_FAST_ROUNDS=1000000 for a longer search than CI's. */
const ROUNDS = Number(process.env.FORM_FAST_ROUNDS ?? 10_000);

/** What the intake gets: the fast path, or qs when the fast path declines. */
const viaFastPath = (raw: string) => parseSimpleForm(raw, PARSE_LIMITS) ?? parseForm(raw);

const capture = fs.readFileSync(
  path.join(
    path.dirname(fileURLToPath(import.meta.url)),
    '..',
    'fixtures',
    'events',
    'oncrmcontactadd-capture.txt',
  ),
  'utf8',
);

describe('fast delivery parser', () => {
  it('takes a captured Bitrix24 delivery itself and reads it exactly as qs does', () => {
    const body = capture.trim().split('\n').pop()!.trim();
    const fast = parseSimpleForm(body, PARSE_LIMITS);
    expect(fast).toBeDefined();
    expect(fast).toEqual(parseForm(body));
  });

  it(`agrees with qs on ${ROUNDS.toLocaleString('en-US')} generated bodies, realistic and hostile`, () => {
    const rand = prng(20261127);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const names = ['ID', 'FIELDS', 'STAGE_ID', 'UF_CRM_1', 'member_id', 'a', '_x', 'TITLE'];
    const values = [
      '1',
      'WON',
      'caf%C3%A9',
      'a+b',
      '%E2%9C%93',
      '',
      'x%',
      '%FF',
      '%00',
      '=',
      'a]=b',
      'x%5D=y',
      '%5B%ZZ',
      '%5b1%5d',
      'a%5d=b',
      '%E2%5B',
      '%41',
      '+%2B+',
    ];
    const soup = [
      'data',
      'auth',
      'event',
      '[',
      ']',
      '%5B',
      '%5d',
      '%5b',
      '%5D=',
      '%5d=',
      '%41',
      '%5',
      '[]',
      '[0]',
      '[1]',
      '%5B0%5D',
      '=',
      '&',
      '&&',
      '%',
      '%2',
      '%zz',
      '+',
      '.',
      '__proto__',
      'constructor',
      'hasOwnProperty',
      'ID',
      'FIELDS',
      '%C3',
      '%A9',
      '%26',
      '%3D',
      'é',
      '\u0000',
      ']=',
      '[a',
      'b]',
      'toString',
      'ts',
      '1764237600',
    ];
    const realistic = (): string => {
      const pairs = new Map<string, string>();
      pairs.set('event', 'ONCRMDEALUPDATE');
      const n = 1 + Math.floor(rand() * 8);
      for (let i = 0; i < n; i++) {
        // Branch names from the list, a leaf name of its own: no key is both.
        let key = pick(['data', 'auth', 'x']);
        const depth = Math.floor(rand() * 3);
        for (let d = 0; d < depth; d++) key += `[${pick(names)}]`;
        pairs.set(`${key}[F${i}]`, pick(values));
      }
      pairs.set('ts', String(Math.floor(rand() * 2e9)));
      // Brackets plain, encoded, or encoded in lower case (each key on its own).
      const encodeKey = rand();
      const encode = (k: string) =>
        encodeKey < 0.4
          ? k
          : encodeKey < 0.8
            ? k.replace(/\[/g, '%5B').replace(/\]/g, '%5D')
            : k.replace(/\[|\]/g, (b) => (rand() < 0.5 ? b : b === '[' ? '%5b' : '%5d'));
      return [...pairs].map(([k, v]) => `${encode(k)}=${v}`).join('&');
    };
    const hostile = (): string => {
      const n = Math.floor(rand() * 24);
      let s = '';
      for (let i = 0; i < n; i++) s += pick(soup);
      return s;
    };
    const deep = (): string => {
      let key = 'data';
      const depth = Math.floor(rand() * 10);
      for (let d = 0; d < depth; d++) key += `%5B${pick(names)}%5D`;
      return `${key}=1&event=X`;
    };
    const many = (): string =>
      Array.from({ length: 495 + Math.floor(rand() * 10) }, (_, i) => `k${i}=v`).join('&');

    let fastTaken = 0;
    let realisticCount = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const kind = i % 10;
      let body: string;
      if (kind < 5) {
        body = realistic();
        realisticCount++;
        if (parseSimpleForm(body, PARSE_LIMITS) !== undefined) fastTaken++;
      } else if (kind < 9) body = kind === 8 ? deep() : hostile();
      else body = i % 20 === 9 ? many() : hostile() + realistic();
      const expected = outcome(() => parseForm(body));
      const actual = outcome(() => viaFastPath(body));
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        // Name the body so the case can be reproduced.
        expect({ body, actual }).toEqual({ body, actual: expected });
      }
    }
    // Deliveries without repeated keys are the common case and must not fall back to qs.
    expect(fastTaken / realisticCount).toBeGreaterThan(0.95);
  });
});
