import { describe, expect, it } from '@jest/globals';
import { matchBadge } from '../../server/ui/pages/log-view.js';

describe('a rule match’s badge on the event page', () => {
  const run = (rule_name: string, status: string, generation = 0, step_index = 0) => ({
    rule_name,
    status,
    generation,
    step_index,
  });

  it('keeps done and skipped as they are', () => {
    expect(matchBadge({ rule_name: 'A', status: 'done' }, [], 'processed')).toEqual({
      status: 'done',
      label: '',
    });
    expect(matchBadge({ rule_name: 'A', status: 'skipped' }, [], 'skipped')).toEqual({
      status: 'skipped',
      label: '',
    });
  });

  it('says a step failed for good, or will be retried, by the event’s status', () => {
    const runs = [run('A', 'succeeded'), run('A', 'failed'), run('B', 'succeeded')];
    expect(matchBadge({ rule_name: 'A', status: 'matched' }, runs, 'failed')).toEqual({
      status: 'failed',
      label: 'match.stepFailed',
    });
    expect(matchBadge({ rule_name: 'A', status: 'matched' }, runs, 'received')).toEqual({
      status: 'failed',
      label: 'run.willRetry',
    });
    // Another rule's failure is not this one's: B has run, and runs.
    expect(matchBadge({ rule_name: 'B', status: 'matched' }, runs, 'processing')).toEqual({
      status: 'running',
      label: '',
    });
    // A rule of a waiting event that has not run yet waits; "matched" read as done.
    expect(matchBadge({ rule_name: 'C', status: 'matched' }, runs, 'received')).toEqual({
      status: 'pending',
      label: 'match.waiting',
    });
  });

  it('judges the latest processing only: a replay that is running is not the old failure', () => {
    const runs = [run('A', 'failed', 0), run('A', 'running', 1)];
    expect(matchBadge({ rule_name: 'A', status: 'matched' }, runs, 'processing')).toEqual({
      status: 'running',
      label: '',
    });
  });

  it('judges by the event’s latest processing: a rule an earlier failure kept from running is not run', () => {
    // Generation 0: A succeeded, B failed. A replay re-running succeeded steps (generation 1)
    // failed on A, and B never ran in it: B's failure is not this processing's.
    const runs = [run('A', 'succeeded', 0), run('B', 'failed', 0), run('A', 'failed', 1)];
    expect(matchBadge({ rule_name: 'B', status: 'matched' }, runs, 'failed')).toEqual({
      status: 'pending',
      label: 'match.notRun',
    });
    expect(matchBadge({ rule_name: 'A', status: 'matched' }, runs, 'failed')).toEqual({
      status: 'failed',
      label: 'match.stepFailed',
    });
  });

  it('does not say "will retry" of a step that continues on error: the rule went on past it', () => {
    const runs = [run('A', 'failed', 0, 0), run('A', 'running', 0, 1)];
    const continues = (rule: string, step: number) => rule === 'A' && step === 0;
    expect(
      matchBadge({ rule_name: 'A', status: 'matched' }, runs, 'processing', continues),
    ).toEqual({ status: 'running', label: '' });
    // Control: the same failure of a step that does not continue will be retried.
    expect(matchBadge({ rule_name: 'A', status: 'matched' }, runs, 'processing')).toEqual({
      status: 'failed',
      label: 'run.willRetry',
    });
  });

  it('says a rule of a failed event whose steps never ran was not run', () => {
    const runs = [run('A', 'failed')];
    expect(matchBadge({ rule_name: 'B', status: 'matched' }, runs, 'failed')).toEqual({
      status: 'pending',
      label: 'match.notRun',
    });
  });
});
