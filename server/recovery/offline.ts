import { hash } from 'node:crypto';
import type { Deps } from '../deps.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { entityOf } from '../intake/entity.js';
import { LIFECYCLE_EVENTS } from '../intake/intake.js';
import { OFFLINE_CONNECTOR, OFFLINE_NOTICE } from '../install/bindings.js';
import { toError } from '../lib/errors.js';
import type { JobHandler } from '../queue/types.js';
import { writeIntakeBatch, type IntakeRow } from '../../db/stores/intake.js';
import { findPortalById, listPortals, type PortalRow } from '../../db/stores/portals.js';

/** One record of `event.offline.get` (protocol §3.3). */
export interface OfflineEventRecord {
  ID: string | number;
  TIMESTAMP_X: string;
  EVENT_NAME: string;
  EVENT_DATA: Record<string, unknown> | unknown[] | null;
  EVENT_ADDITIONAL?: { user_id?: string | number } | unknown[];
  MESSAGE_ID: string;
}

export interface DrainReport {
  /** Records read from the portal. */
  read: number;
  /** Stored as events with source `offline`, to be processed. */
  recovered: number;
  /** Dropped: the entity was already handled after the record's change. */
  covered: number;
}

export interface OfflineDrain {
  /** Reads, stores and clears the portal's offline records until none are left. */
  drainPortal(portal: PortalRow): Promise<DrainReport>;
  /** Every installed OAuth portal in turn (the timer's tick). */
  drainAll(): Promise<DrainReport>;
  /** Drains every `intervalMs` as well as on ONOFFLINEEVENT. @default 5 min */
  start(intervalMs?: number): void;
  stop(): Promise<void>;
  /**
   * The `process_event` handler with ONOFFLINEEVENT taken out: that event carries no entity,
   * it only says records wait, so its job drains them.
   */
  wrap(processor: JobHandler): JobHandler;
}

export interface OfflineDrainOptions {
  /** Called after new events and jobs were stored (wakes the worker). */
  onStored?: () => void;
  /** Records per `event.offline.get`. @default 50 */
  batchSize?: number;
}

/**
 * Events whose entity was already taken up after this time make a record redundant: every
 * stored event is processed with a fresh read of its entity, so one received at or after the
 * change (done, or still waiting its turn) sees the change already.
 */
const COVERING_STATUSES = ['processed', 'skipped', 'received', 'processing'] as const;

/** How many `event.offline.get` rounds one drain makes at most (then the next tick goes on). */
const MAX_ROUNDS = 200;

const dataOf = (r: OfflineEventRecord): Record<string, unknown> =>
  r.EVENT_DATA && !Array.isArray(r.EVENT_DATA) ? r.EVENT_DATA : {};

/**
 * The offline safety net (issue 8): Bitrix24 never re-sends a lost delivery, but it keeps one
 * offline record per (event, object) for our offline bindings. We read them in the confirm
 * mode (`clear=0` reserves them under a process_id), store each one that is not covered as
 * an event with source `offline` and a `process_event` job — in the intake's own store, so
 * dedupe and ordering per entity are the same — and only then clear them. A crash between
 * storing and clearing leaves the reservation to expire; the dedupe key (MESSAGE_ID and
 * TIMESTAMP_X) keeps a re-read record from being stored twice.
 */
export function createOfflineDrain(deps: Deps, opts: OfflineDrainOptions = {}): OfflineDrain {
  const { db, logger, config } = deps;
  const limit = opts.batchSize ?? 50;
  const now = () => deps.clock.now().getTime();
  const running = new Map<number, Promise<DrainReport>>();
  let timer: NodeJS.Timeout | undefined;
  let tick: Promise<unknown> | undefined;

  async function covered(portal: PortalRow, type: string, id: string, changedAt: number) {
    const hit = (await db('events')
      .where({ portal_id: portal.id, entity_type: type, entity_id: id })
      .whereIn('status', COVERING_STATUSES)
      .where('received_at', '>=', changedAt)
      .first('id')) as { id: number } | undefined;
    return hit !== undefined;
  }

  async function rowFor(portal: PortalRow, r: OfflineEventRecord): Promise<IntakeRow | null> {
    const event = String(r.EVENT_NAME).toUpperCase();
    if (LIFECYCLE_EVENTS.has(event) || event === OFFLINE_NOTICE) return null;
    const data = dataOf(r);
    const entity = entityOf(event, data);
    const changedAt = Date.parse(r.TIMESTAMP_X);
    if (
      entity.type &&
      entity.id &&
      Number.isFinite(changedAt) &&
      (await covered(portal, entity.type, entity.id, changedAt))
    ) {
      return null;
    }
    const t = now();
    const ts = Number.isFinite(changedAt) ? Math.floor(changedAt / 1000) : null;
    return {
      event: {
        portal_id: portal.id,
        member_id: portal.member_id,
        event,
        event_handler_id: null,
        entity_type: entity.type,
        entity_id: entity.id,
        ts,
        body: JSON.stringify({
          event,
          data,
          ts,
          offline: { id: String(r.ID), message_id: r.MESSAGE_ID, timestamp_x: r.TIMESTAMP_X },
        }),
        auth_enc: null,
        dedupe_key: hash(
          'sha256',
          `${portal.member_id}\noffline\n${r.MESSAGE_ID}\n${r.TIMESTAMP_X}`,
          'hex',
        ),
        status: 'received',
        reject_reason: null,
        source: 'offline',
        received_at: t,
        remote_addr: null,
      },
      job: {
        type: 'process_event',
        portal_id: portal.id,
        entity_key: entity.id ? `${portal.id}:${entity.type}:${entity.id}` : null,
        payload: null,
        max_attempts: config.worker.maxAttempts,
        run_at: t,
      },
    };
  }

  async function drainOnce(portal: PortalRow): Promise<DrainReport> {
    const report: DrainReport = { read: 0, recovered: 0, covered: 0 };
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const answer = await deps.bitrix.call<{
        process_id?: string;
        events?: OfflineEventRecord[];
      }>(portal, 'event.offline.get', {
        clear: 0,
        limit,
        auth_connector: OFFLINE_CONNECTOR,
      });
      const records = Array.isArray(answer?.events) ? answer.events : [];
      if (records.length === 0 || !answer.process_id) break;
      report.read += records.length;
      const rows: IntakeRow[] = [];
      for (const r of records) {
        const row = await rowFor(portal, r);
        if (row) rows.push(row);
        else report.covered++;
      }
      if (rows.length) {
        const outcomes = await writeIntakeBatch(db, rows, now());
        report.recovered += outcomes.filter((o) => !o.duplicate).length;
        opts.onStored?.();
      }
      await deps.bitrix.call(portal, 'event.offline.clear', {
        process_id: answer.process_id,
        message_id: records.map((r) => r.MESSAGE_ID),
      });
      if (records.length < limit) break;
    }
    if (report.read > 0) {
      logger.info({ memberId: portal.member_id, ...report }, 'offline events drained');
    }
    return report;
  }

  function drainPortal(portal: PortalRow): Promise<DrainReport> {
    // One drain per portal at a time: a notice during a drain joins it.
    const busy = running.get(portal.id);
    if (busy) return busy;
    const p = drainOnce(portal).finally(() => running.delete(portal.id));
    running.set(portal.id, p);
    return p;
  }

  async function drainAll(): Promise<DrainReport> {
    const total: DrainReport = { read: 0, recovered: 0, covered: 0 };
    if (!config.b24.offlineEvents) return total;
    for (const p of await listPortals(db)) {
      if (p.status !== 'installed' || p.auth_mode !== 'oauth' || !p.access_token_enc) continue;
      try {
        const r = await drainPortal(p);
        total.read += r.read;
        total.recovered += r.recovered;
        total.covered += r.covered;
      } catch (e) {
        logger.warn(
          { memberId: p.member_id, err: toError(e).message },
          'offline drain failed; the next tick tries again',
        );
      }
    }
    return total;
  }

  return {
    drainPortal,
    drainAll,
    start(intervalMs = 5 * 60_000) {
      if (timer) return;
      timer = setInterval(() => {
        if (tick) return;
        tick = drainAll().finally(() => {
          tick = undefined;
        });
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await tick;
      await Promise.allSettled([...running.values()]);
    },
    wrap(processor) {
      return async (ctx) => {
        if (ctx.event?.event !== OFFLINE_NOTICE) return processor(ctx);
        const portal =
          ctx.event.portal_id === null ? undefined : await findPortalById(db, ctx.event.portal_id);
        if (!portal || portal.status !== 'installed' || portal.auth_mode !== 'oauth') {
          return { eventStatus: 'skipped', note: 'portal is not installed' };
        }
        try {
          const r = await drainPortal(portal);
          return {
            eventStatus: 'processed',
            note: `offline drain: ${r.read} read, ${r.recovered} recovered, ${r.covered} covered`,
          };
        } catch (e) {
          // Refused (no admin token, no offline binding): nothing to drain, nothing to retry.
          if (isBitrixApiError(e) && !e.retryable) {
            return { eventStatus: 'skipped', note: `offline drain refused: ${e.message}` };
          }
          throw e;
        }
      };
    },
  };
}
