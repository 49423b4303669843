import type { Deps } from '../deps.js';
import { toError } from '../lib/errors.js';
import {
  abandonGaps,
  beat,
  getHeartbeat,
  markStopped,
  type GapRow,
} from '../../db/stores/recovery.js';
import { liveInstanceKeys } from '../../db/stores/instances.js';
import type { OfflineDrain } from './offline.js';
import { sweepResumedLapses } from './lapses.js';
import { createSweeper, type Sweeper } from './sweep.js';

export interface RecoveryOptions {
  /** The offline drain: after a gap its records are taken in before the sweep. */
  offline?: OfflineDrain;
  /** Called after reconcile events were stored (wakes the worker). */
  onStored?: () => void;
  /** How often the heartbeat is written. @default 60 s */
  heartbeatMs?: number;
  /** A start later than this after the last beat is a gap. @default 2 × heartbeatMs */
  gapThresholdMs?: number;
  /** The sweep lists from this much before the last beat. @default 5 min */
  marginMs?: number;
  /** PostgreSQL: this instance's presence-lock key (server/cluster/instance-lock.ts). */
  instanceKey?: number;
}

export interface Recovery {
  readonly sweeper: Sweeper;
  /**
   * Reads the last heartbeat, starts beating, and when the app was away longer than the
   * threshold drains the offline queues and sweeps the gap. Resolves when that is over
   * (undefined without a gap); failures are logged, never thrown.
   */
  start(): Promise<GapRow | undefined>;
  /** Writes one beat now (what the timer does every minute). */
  beat(): Promise<void>;
  /** Stops the timer and a sweep in progress, and marks a clean stop. */
  stop(): Promise<void>;
}

/**
 * Downtime detection and the sweep: a heartbeat row refreshed every minute tells
 * a starting app since when nobody listened; that gap is swept for changes whose deliveries
 * were lost (server/recovery/sweep.ts).
 */
export function createRecovery(deps: Deps, opts: RecoveryOptions = {}): Recovery {
  const { db, logger, config } = deps;
  const every = opts.heartbeatMs ?? 60_000;
  const threshold = opts.gapThresholdMs ?? 2 * every;
  const margin = opts.marginMs ?? 5 * 60_000;
  const now = () => deps.clock.now().getTime();
  const sweeper = createSweeper(deps, { onStored: opts.onStored });
  let startedAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let startup: Promise<GapRow | undefined> | undefined;
  let stopped = false;

  async function beatNow() {
    if (!startedAt || stopped) return;
    try {
      await beat(db, now(), startedAt);
    } catch (e) {
      logger.warn({ err: toError(e).message }, 'heartbeat not written');
    }
    // Portals whose plan took the app back after a lapse: their lapse is swept.
    await sweepResumedLapses(deps, sweeper, margin).catch((e: unknown) => {
      logger.warn({ err: toError(e).message }, 'payment lapses not looked at');
    });
  }

  /** PostgreSQL: how many other instances hold their presence lock now. */
  async function othersRunning(): Promise<number> {
    const live = await liveInstanceKeys(db);
    if (opts.instanceKey !== undefined) live.delete(opts.instanceKey);
    return live.size;
  }

  async function boot(): Promise<GapRow | undefined> {
    const t = now();
    if (config.database.client === 'sqlite' || (await othersRunning()) === 0) {
      // One server process owns a SQLite file, and on PostgreSQL no other instance is
      // running: the sweeps still `running` died with their process.
      await abandonGaps(db, t + 1, t, ['start', 'ui']);
    }
    const last = await getHeartbeat(db);
    startedAt = t;
    await beat(db, t, t);
    timer = setInterval(() => void beatNow(), every);
    timer.unref();
    if (!last || t - last.beat_at <= threshold) return undefined;
    logger.warn(
      {
        lastBeat: new Date(last.beat_at).toISOString(),
        downSeconds: Math.round((t - last.beat_at) / 1000),
        cleanStop: last.stopped_at !== null,
      },
      'the app was not running: sweeping the gap for lost deliveries',
    );
    if (opts.offline && config.b24.offlineEvents) {
      await opts.offline.drainAll().catch((e: unknown) => {
        logger.warn({ err: toError(e).message }, 'offline drain before the sweep failed');
      });
    }
    return sweeper.run({ since: last.beat_at, until: t, marginMs: margin, trigger: 'start' });
  }

  return {
    sweeper,
    start() {
      startup ??= boot().catch((e: unknown) => {
        logger.error({ err: toError(e).message }, 'downtime check failed');
        return undefined;
      });
      return startup;
    },
    beat: beatNow,
    async stop() {
      if (stopped) return;
      if (timer) clearInterval(timer);
      timer = undefined;
      await sweeper.cancel();
      await startup;
      if (startedAt) {
        await markStopped(db, now()).catch((e: unknown) => {
          logger.warn({ err: toError(e).message }, 'clean stop not recorded');
        });
      }
      stopped = true;
    },
  };
}
