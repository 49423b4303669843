import { describe, expect, it } from '@jest/globals';
import { foldFormerNames, withRenames } from '../../server/rules/rule-names.js';

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
});
