import type { Deps } from '../deps.js';
import { toError } from '../lib/errors.js';
import { prune, type PruneReport } from './prune.js';

export interface RetentionOptions {
  /** True while the intake has deliveries waiting for their commit: the prune waits. */
  shouldYield?: () => boolean;
  /** Several instances on PostgreSQL: only the one this answers true for prunes. */
  leader?: () => Promise<boolean>;
  /** The rest after a batch, as a multiple of the time it held the database (REST_FACTOR). */
  restFactor?: number;
}

/** The background prune of the server (db/README.md#retention). */
export interface Retention {
  /** Prunes now (one pass); what the timer runs. */
  runOnce(): Promise<PruneReport | undefined>;
  /** Runs a pass every `everyMs` (the first one after `firstAfterMs`). */
  start(everyMs?: number, firstAfterMs?: number): void;
  /** Stops the timer and the pass under way (between two batches), and waits for it. */
  stop(): Promise<void>;
}

const MINUTE = 60_000;
/** How long a pass waits for the intake to drain before it takes a batch anyway. */
const MAX_YIELD_MS = 200;
/**
 * After a batch that held the database for t ms, the prune rests REST_FACTOR × t (at most
 * MAX_REST_MS): it takes at most a quarter of the time, so deliveries keep most of it. A
 * million old events then take a few minutes instead of one, in the background.
 */
const REST_FACTOR = 3;
const MAX_REST_MS = 1000;

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

export function createRetention(deps: Deps, opts: RetentionOptions = {}): Retention {
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<PruneReport | undefined> | undefined;
  let stopping = false;

  /**
   * Between two batches: back to the event loop (deliveries parse and verify there) for a
   * rest in proportion to the batch, and while the intake has commits waiting, a few
   * milliseconds more at a time.
   */
  async function pause(heldMs: number): Promise<void> {
    const rest = Math.min(MAX_REST_MS, Math.ceil(heldMs * (opts.restFactor ?? REST_FACTOR)));
    await (rest > 0 ? new Promise<void>((resolve) => setTimeout(resolve, rest)) : nextTick());
    const since = Date.now();
    while (opts.shouldYield?.() && !stopping && Date.now() - since < MAX_YIELD_MS) {
      await new Promise<void>((resolve) => setTimeout(resolve, 5));
    }
  }

  async function pass(): Promise<PruneReport | undefined> {
    if (opts.leader && !(await opts.leader())) return undefined;
    const t0 = Date.now();
    const report = await prune(deps, { pause, stopped: () => stopping });
    const removed = Object.values(report.tables).reduce((s, n) => s + n, 0);
    if (removed > 0 || report.vacuumedPages) {
      deps.logger.info(
        { tables: report.tables, vacuumedPages: report.vacuumedPages, ms: Date.now() - t0 },
        'retention: pruned old data',
      );
    }
    return report;
  }

  function runOnce(): Promise<PruneReport | undefined> {
    current ??= pass().finally(() => (current = undefined));
    return current;
  }

  function schedule(ms: number, everyMs: number) {
    if (stopping) return;
    timer = setTimeout(() => {
      runOnce()
        .catch((e: unknown) =>
          deps.logger.warn(
            { err: toError(e).message },
            'retention: prune failed; next pass retries',
          ),
        )
        .finally(() => schedule(everyMs, everyMs));
    }, ms);
    timer.unref();
  }

  return {
    runOnce,
    start(everyMs = 10 * MINUTE, firstAfterMs = MINUTE) {
      stopping = false;
      if (timer) clearTimeout(timer);
      schedule(firstAfterMs, everyMs);
    },
    async stop() {
      stopping = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await current?.catch(() => undefined);
    },
  };
}
