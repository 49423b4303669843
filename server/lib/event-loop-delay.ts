import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/** Event-loop delay percentiles of a window, in milliseconds. */
export interface LoopDelay {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Samples in the window. */
  count: number;
}

export interface LoopDelayMonitor {
  /** Percentiles since the last `take` (or the start); starts a new window. */
  take(): LoopDelay;
  stop(): void;
}

/**
 * How long the main thread kept timers waiting (perf_hooks.monitorEventLoopDelay, sampled
 * every `resolutionMs`): everything on the main thread runs between two deliveries, so its
 * p99 is the intake's tail latency floor. Node's histogram records the time between two
 * samples, the sampling interval included (an idle process shows p50 ≈ `resolutionMs`), so
 * the interval is taken off: 0 is a timer that fired on time.
 */
export function startLoopDelayMonitor(resolutionMs = 10): LoopDelayMonitor {
  const h: IntervalHistogram = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  const late = (ns: number) => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - resolutionMs) : 0);
  return {
    take() {
      const out = {
        p50: late(h.percentile(50)),
        p90: late(h.percentile(90)),
        p99: late(h.percentile(99)),
        max: late(h.max),
        count: h.count,
      };
      h.reset();
      return out;
    },
    stop: () => h.disable(),
  };
}
