import { describe, expect, it } from '@jest/globals';
import { afterSave, foldFormerNames, withRenames } from '../../server/rules/rule-names.js';

const fig = (rule: string, succeeded: number, failed = 0, other = 0) => ({
  rule,
  succeeded,
  failed,
  other,
});

describe('former rule names', () => {
  it('follows a rule through renames, newest first; a name that comes back is current again', () => {
    let f = withRenames({}, [['A', 'B']]);
    expect(f).toEqual({ B: ['A'] });
    f = withRenames(f, [['B', 'C']]);
    expect(f).toEqual({ C: ['B', 'A'] });
    f = withRenames(f, [['C', 'A']]);
    expect(f).toEqual({ A: ['C', 'B'] });
    // Nothing for a new rule (no from), nor for a name kept.
    expect(
      withRenames(f, [
        ['', 'X'],
        ['A', 'A'],
      ]),
    ).toEqual(f);
    // At most 20 former names.
    let long = {};
    for (let i = 0; i < 30; i++) long = withRenames(long, [[`n${i}`, `n${i + 1}`]]);
    expect((long as Record<string, string[]>).n30).toHaveLength(20);
  });

  it('counts former names for the rule that has them now, unless a rule is called that again', () => {
    const figures = [fig('A', 5), fig('B', 2, 1), fig('Old', 1, 0, 1), fig('Gone', 4)];
    // B was A; C was Old. A is a rule again (a new one): its figures stay its own.
    expect(foldFormerNames(figures, ['B', 'C'], { B: ['A'], C: ['Old'] })).toEqual([
      fig('B', 7, 1),
      fig('C', 1, 0, 1),
      fig('Gone', 4),
    ]);
    expect(foldFormerNames(figures, ['A', 'B', 'C'], { B: ['A'], C: ['Old'] })).toEqual([
      fig('A', 5),
      fig('B', 2, 1),
      fig('C', 1, 0, 1),
      fig('Gone', 4),
    ]);
  });

  it('keeps former names only for the rules a save kept: a deleted rule takes its own along', () => {
    // A was renamed B; B is deleted; a new, unrelated rule is called B later.
    let f = afterSave({}, [['A', 'B']], ['B', 'Other']);
    expect(f).toEqual({ B: ['A'] });
    f = afterSave(f, [], ['Other']);
    expect(f).toEqual({});
    expect(
      foldFormerNames([fig('A', 7, 3)], ['B', 'Other'], afterSave(f, [], ['B', 'Other'])),
    ).toEqual([fig('A', 7, 3)]);
    // Fifty rules renamed again and again: never more keys than rules.
    let names = Array.from({ length: 50 }, (_, i) => `r${i}`);
    let many = {};
    for (let round = 0; round < 30; round++) {
      const next = names.map((n) => `${n}.`);
      many = afterSave(
        many,
        names.map((n, i) => [n, next[i]!] as const),
        next,
      );
      names = next;
    }
    expect(Object.keys(many)).toHaveLength(50);
    expect(Object.values(many).every((v) => (v as string[]).length === 20)).toBe(true);
  });
});
