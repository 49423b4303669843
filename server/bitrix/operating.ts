/**
 * Bitrix24's per-method operating-time budget (b24restdocs limits.md, "Resource
 * Consumption Limits"): every answer's `time.operating` is the method's execution time
 * summed over the last 10 minutes, `time.operating_reset_at` (unix seconds) when part of it
 * is released; past 480 s the portal blocks that method (for this app or webhook:
 * settings/performance/limits.md) with 429 OPERATION_TIME_LIMIT, while other methods go on.
 *
 * We keep the last figures per (portal, method) and slow a heavy method before the portal
 * blocks it: from `slowFrom` of the limit on, each call waits a share (growing with the use)
 * of up to 10 s; when one more call of the method's last cost would pass the limit, it waits
 * for `operating_reset_at`, when part of the budget comes back; a method the portal blocked
 * waits until its `operating_reset_at` too.
 */
export interface OperatingBudget {
  /** Records the `time` block of an answer of `method`. */
  note(key: string, method: string, time: unknown): void;
  /** The portal blocked `method` until `resetAtMs` (a 429 OPERATION_TIME_LIMIT). */
  block(key: string, method: string, resetAtMs: number): void;
  /** How long a call of `method` should wait now, in ms (0: go). */
  delayFor(key: string, method: string): number;
  /**
   * `operating_reset_at` (ms) of the last answer of `method` that had one, while it is
   * ahead: where a 429 without figures of its own is retried first
   * (DOCS:settings/performance/limits.md, "How to Respond to Limit Errors").
   */
  lastResetAt(key: string, method: string): number | undefined;
}

export interface OperatingBudgetOptions {
  /** Seconds per 10 minutes the portal allows a method. @default 480 */
  limitSec?: number;
  /** Share of the limit from which calls are slowed. @default 0.75 */
  slowFrom?: number;
  /** Wall-clock milliseconds, the portal's time base. @default Date.now */
  now?: () => number;
}

/** When an error or answer carries no `operating_reset_at`: one of the ten baskets. */
export const DEFAULT_BLOCK_MS = 60_000;

/** Longest pause of a call while a method is merely heavy (not yet at its limit). */
const MAX_SLOW_MS = 10_000;

interface Figures {
  operatingSec: number;
  /** What the last call added, as far as the figures tell. */
  lastCostSec: number;
  resetAtMs: number;
  blockedUntil: number;
  at: number;
}

/** `{operating, operating_reset_at}` of a `time` block, when it has them. */
export function operatingOf(time: unknown): { operatingSec: number; resetAtMs: number } | null {
  if (!time || typeof time !== 'object') return null;
  const t = time as Record<string, unknown>;
  const operating = Number(t.operating);
  if (!Number.isFinite(operating)) return null;
  const reset = Number(t.operating_reset_at);
  return { operatingSec: operating, resetAtMs: Number.isFinite(reset) ? reset * 1000 : 0 };
}

export function createOperatingBudget(opts: OperatingBudgetOptions = {}): OperatingBudget {
  const limitSec = opts.limitSec ?? 480;
  const slowSec = limitSec * (opts.slowFrom ?? 0.75);
  const now = opts.now ?? Date.now;
  const figures = new Map<string, Figures>();
  const id = (key: string, method: string) => `${key}\n${method.toLowerCase()}`;

  function forget(t: number) {
    if (figures.size < 10_000) return;
    for (const [k, f] of figures) if (t - f.at > 600_000 && f.blockedUntil < t) figures.delete(k);
  }

  return {
    note(key, method, time) {
      const o = operatingOf(time);
      if (!o) return;
      const t = now();
      const prev = figures.get(id(key, method));
      const grew = prev ? o.operatingSec - prev.operatingSec : o.operatingSec;
      figures.set(id(key, method), {
        operatingSec: o.operatingSec,
        lastCostSec: grew > 0 ? grew : (prev?.lastCostSec ?? 0),
        resetAtMs: o.resetAtMs,
        blockedUntil: prev?.blockedUntil ?? 0,
        at: t,
      });
      forget(t);
    },
    block(key, method, resetAtMs) {
      const t = now();
      const prev = figures.get(id(key, method));
      figures.set(id(key, method), {
        operatingSec: Math.max(prev?.operatingSec ?? 0, limitSec),
        lastCostSec: prev?.lastCostSec ?? 0,
        resetAtMs,
        blockedUntil: resetAtMs,
        at: t,
      });
    },
    lastResetAt(key, method) {
      const reset = figures.get(id(key, method))?.resetAtMs ?? 0;
      return reset > now() ? reset : undefined;
    },
    delayFor(key, method) {
      const f = figures.get(id(key, method));
      if (!f) return 0;
      const t = now();
      if (f.blockedUntil > t) return f.blockedUntil - t;
      // Figures older than the window say nothing any more.
      if (t - f.at > 600_000 || f.resetAtMs <= t) return 0;
      // The portal blocks once the sum exceeds the limit: one more such call would.
      if (f.operatingSec + f.lastCostSec > limitSec) return f.resetAtMs - t;
      if (f.operatingSec < slowSec) return 0;
      const share = Math.min(1, (f.operatingSec - slowSec) / (limitSec - slowSec));
      return Math.ceil(share * Math.min(MAX_SLOW_MS, f.resetAtMs - t));
    },
  };
}
