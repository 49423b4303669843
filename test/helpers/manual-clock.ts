import type { Clock } from '../../server/lib/clock.js';

export interface ManualClock extends Clock {
  advance(ms: number): void;
  set(date: Date | number): void;
}

/** A clock tests move by hand. */
export function createManualClock(
  start: Date | number = Date.UTC(2026, 10, 27, 10, 0, 0),
): ManualClock {
  let t = typeof start === 'number' ? start : start.getTime();
  return {
    now: () => new Date(t),
    advance(ms) {
      t += ms;
    },
    set(d) {
      t = typeof d === 'number' ? d : d.getTime();
    },
  };
}
