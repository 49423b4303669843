import type { Deps } from '../deps.js';
import { createChannelCheck, type Mailer } from '../actions/index.js';
import { createDestinations, type Destinations } from '../queue/destinations.js';
import type { EventInfo, EventMap } from '../rules/model.js';
import type { EventRow } from '../../db/stores/events.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { createEntityReader, type Entity, type EntityReader } from './entity-reader.js';
import { createKeptRecords, type KeptRecords, type Turn } from './turn.js';

export interface ProcessorOptions {
  reader?: EntityReader;
  mailer?: Mailer;
  fetch?: typeof fetch;
  /** An event for an entity we wrote to within this window is our own write's echo. @default 10 min */
  ownWriteWindowMs?: number;
  /** How many of our own writes may chain (rule → write → event → rule …). @default 3 */
  maxChainDepth?: number;
  /** Concurrency caps and circuit breakers of the steps' destinations (server/queue/). */
  destinations?: Destinations;
  /**
   * An event whose entity must be read waits (giving its worker back, no attempt spent) when
   * the portal's REST budget would hold the read longer than this. @default 2 s
   */
  maxRestWaitMs?: number;
}

/**
 * What every part of event processing shares, built once per processor from its options
 * (graphile-worker's compiled options): the reader's cache and the destinations' caps live
 * here, so every job of the processor sees the same ones.
 */
export interface ProcessContext {
  readonly deps: Deps;
  readonly reader: EntityReader;
  readonly destinations: Destinations;
  /** Records of jobs that gave their slot back, for their next turn (turn.ts). */
  readonly kept: KeptRecords;
  readonly ownWriteWindowMs: number;
  readonly maxChainDepth: number;
  readonly maxRestWaitMs: number;
  readonly mailer: Mailer | undefined;
  readonly fetch: typeof fetch | undefined;
  /** The clock's time in ms. */
  now(): number;
}

export function createProcessContext(deps: Deps, opts: ProcessorOptions = {}): ProcessContext {
  return {
    deps,
    reader: opts.reader ?? createEntityReader(deps),
    destinations:
      opts.destinations ??
      createDestinations(deps, {
        concurrency: deps.config.worker.destinationConcurrency,
        check: createChannelCheck({ config: deps.config, mailer: opts.mailer, fetch: opts.fetch }),
      }),
    kept: createKeptRecords(),
    ownWriteWindowMs: opts.ownWriteWindowMs ?? 10 * 60_000,
    maxChainDepth: opts.maxChainDepth ?? 3,
    maxRestWaitMs: opts.maxRestWaitMs ?? 2000,
    mailer: opts.mailer,
    fetch: opts.fetch,
    now: () => deps.clock.now().getTime(),
  };
}

/** One `process_event` job's event, as every step of its processing sees it. */
export interface EventScope {
  readonly event: EventRow;
  readonly portal: PortalRow;
  readonly map: EventMap;
  readonly info: EventInfo;
  readonly portalInfo: { domain: string; memberId: string };
  /** The entity as read for this job (undefined: the event names none, or no reader knows it). */
  readonly entity: Entity | undefined;
  /** > 0 when a replay asked to run succeeded steps again. */
  readonly generation: number;
  /** The job's turn in its worker slot: where it may give the slot back (turn.ts). */
  readonly turn: Turn;
}

/** JSON from a stored column, or `fallback` when it is empty or not JSON. */
export const parseStored = <T>(s: string | null, fallback: T): T => {
  if (!s) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
};
