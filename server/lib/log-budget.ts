import type { Logger } from './logger.js';

/** Log lines a minute, per kind, about deliveries anyone can send (rejections, refusals). */
export const INTAKE_LOG_LINES_PER_MINUTE = 60;

/**
 * Whether one more line of `kind` may be logged this minute. Anyone can post to the events
 * URL, and each refused post wrote a warn line: a flood filled the log (and its disk) as
 * fast as it came. Past `perMinute` lines of a kind the rest are only counted (every refusal
 * is in `/metrics` anyway), and the first line of a later minute says how many were left out.
 */
export function createLogBudget(
  logger: Logger,
  now: () => number,
  perMinute = INTAKE_LOG_LINES_PER_MINUTE,
  leftOut = 'intake log lines left out in the last minute (each is counted in /metrics)',
): (kind: string) => boolean {
  let minute = -1;
  const counts = new Map<string, number>();
  return (kind) => {
    const m = Math.floor(now() / 60_000);
    if (m !== minute) {
      for (const [k, n] of counts) {
        if (n > perMinute) {
          logger.warn({ kind: k, left_out: n - perMinute }, leftOut);
        }
      }
      counts.clear();
      minute = m;
    }
    const n = (counts.get(kind) ?? 0) + 1;
    counts.set(kind, n);
    return n <= perMinute;
  };
}
