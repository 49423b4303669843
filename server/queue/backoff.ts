/** Cap on any retry delay: 6 hours (RETRY_BASE_SECONDS in server/config.ts doubles up to it). */
export const MAX_RETRY_DELAY_MS = 6 * 3600 * 1000;

/**
 * The delay before retry number `attempt` (1 = the first retry): `base`, then doubling,
 * capped at 6 h, with ±20 % jitter so retries of a burst spread out. Pure: `random` injected.
 */
export function retryDelayMs(
  attempt: number,
  baseSeconds: number,
  random: () => number = Math.random,
): number {
  const exp = Math.min(Math.max(attempt - 1, 0), 40);
  const raw = Math.min(MAX_RETRY_DELAY_MS, baseSeconds * 1000 * 2 ** exp);
  const jitter = 0.8 + 0.4 * random();
  return Math.min(MAX_RETRY_DELAY_MS, Math.round(raw * jitter));
}

/** When to run next, honouring a server's Retry-After when it asks for longer. */
export function nextRunAt(
  now: number,
  attempt: number,
  baseSeconds: number,
  retryAfterMs?: number,
  random?: () => number,
): number {
  return now + Math.max(retryDelayMs(attempt, baseSeconds, random), retryAfterMs ?? 0);
}
