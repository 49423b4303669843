import { describe, expect, it } from '@jest/globals';
import { startLoopDelayMonitor } from '../../server/lib/event-loop-delay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('event-loop delay monitor', () => {
  it('reads an idle loop as about 0, not as the sampling interval', async () => {
    const monitor = startLoopDelayMonitor(10);
    try {
      await sleep(400);
      const idle = monitor.take();
      // Control: it sampled. Node's raw histogram gives p50 ≈ 10 ms here.
      expect(idle.count).toBeGreaterThan(10);
      expect(idle.p50).toBeLessThan(5);
    } finally {
      monitor.stop();
    }
  });

  it('reads a blocked loop as the time it was blocked', async () => {
    const monitor = startLoopDelayMonitor(10);
    try {
      await sleep(50);
      monitor.take();
      await sleep(15);
      const until = performance.now() + 60;
      while (performance.now() < until) {
        /* hold the event loop */
      }
      await sleep(30);
      const blocked = monitor.take();
      expect(blocked.max).toBeGreaterThanOrEqual(40);
      expect(blocked.max).toBeLessThan(60 + 10 + 200);
    } finally {
      monitor.stop();
    }
  });
});
