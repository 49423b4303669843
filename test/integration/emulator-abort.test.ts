import { getEventListeners } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { postOnce } from '../emulator/http-util.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';

/**
 * The emulator's deliveries share their portal's one AbortSignal (`npm run bench --
 * process` warned of 11 abort listeners on it). The listener count must stay flat however
 * many deliveries are in flight, and aborting must still end them all.
 */
describe('deliveries sharing one abort signal', () => {
  let sink: HttpSink;
  beforeEach(async () => {
    sink = await startHttpSink(() => ({ delayMs: 50 }));
  });
  afterEach(async () => {
    await sink.close();
  });

  const post = (signal: AbortSignal) =>
    postOnce({ url: `${sink.url}/in`, body: 'x=1', timeoutMs: 5000, signal });

  it('adds at most one abort listener to the shared signal over many calls', async () => {
    const aborter = new AbortController();
    let most = 0;
    for (let round = 0; round < 5; round++) {
      const calls = Array.from({ length: 30 }, () => post(aborter.signal));
      most = Math.max(most, getEventListeners(aborter.signal, 'abort').length);
      const answers = await Promise.all(calls);
      expect(answers.every((a) => a.status === 200)).toBe(true);
    }
    // Control: 150 requests really went out, 30 at a time.
    expect(sink.requests).toHaveLength(150);
    expect(most).toBeLessThanOrEqual(1);
    expect(getEventListeners(aborter.signal, 'abort').length).toBeLessThanOrEqual(1);
  });

  it('still ends every request in flight when the signal aborts', async () => {
    sink.handle(() => ({ delayMs: 60_000 }));
    const aborter = new AbortController();
    const calls = Array.from({ length: 12 }, () => post(aborter.signal).then(() => 'answered'));
    while (sink.requests.length < 12) await new Promise((r) => setTimeout(r, 5));
    aborter.abort();
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    await expect(post(aborter.signal)).rejects.toThrow('aborted');
  });
});
