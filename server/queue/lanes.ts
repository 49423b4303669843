import type { Knex } from 'knex';
import {
  claimFairly,
  claimJobs,
  NO_PORTAL,
  topicKey,
  type DuePortalsMemo,
} from '../../db/stores/jobs.js';
import type { JobRow } from './types.js';

/**
 * The worker's slots, in two lanes. Event work (`process_event`, `lifecycle`)
 * has `concurrency` slots, handed out round-robin across portals, one portal holding at most
 * `cap` of them while other portals have due jobs, and inside a portal round-robin across its
 * topics (event names) the same way. Alert jobs have slots of their own, so an alert about a
 * backlog never waits behind that very backlog.
 */
export interface Lanes {
  /** Slots of each lane not in use now. */
  free(): { events: number; alerts: number };
  /**
   * Claims what fits in the free slots (`eventLimit` narrows the event lane, `portalLimits`
   * bounds what it takes of some portals; `alerts: false` skips the alert lane's query).
   */
  claim(
    db: Knex,
    o: {
      workerId: string;
      now: number;
      eventLimit?: number;
      portalLimits?: ReadonlyMap<number, number>;
      alerts?: boolean;
    },
  ): Promise<{ jobs: JobRow[]; eventSlots: number; alertsFull: boolean }>;
  /**
   * A claimed job finished (whatever the outcome): its slot is free again. A job that
   * `yielded` its slot to other portals puts its portal (and its topic) last in the
   * round-robin, so the claim that follows serves them first.
   */
  release(job: JobRow, o?: { yielded?: boolean }): void;
  /** Ids of the jobs in flight. */
  ids(): number[];
  readonly size: number;
}

export interface LaneOptions {
  concurrency: number;
  /** Share of `concurrency` one portal may hold while others have due jobs (0 < share ≤ 1). */
  portalShare: number;
  alertConcurrency: number;
}

const portalOf = (j: JobRow) => j.portal_id ?? NO_PORTAL;

export function createLanes(opts: LaneOptions): Lanes {
  const cap = Math.max(1, Math.floor(opts.concurrency * opts.portalShare));
  const events = new Map<number, JobRow>();
  const alerts = new Map<number, JobRow>();
  const holding = new Map<number, number>();
  const holdingTopics = new Map<string, number>();
  const afterTopic = new Map<number, string>();
  const duePortalsMemo: DuePortalsMemo = {};
  let after = 0;
  const add = <K>(m: Map<K, number>, k: K, d: number) => {
    const n = (m.get(k) ?? 0) + d;
    if (n > 0) m.set(k, n);
    else m.delete(k);
  };

  const ids = () => [...events.keys(), ...alerts.keys()];
  return {
    free: () => ({
      events: opts.concurrency - events.size,
      alerts: opts.alertConcurrency - alerts.size,
    }),
    async claim(db, o) {
      const jobs: JobRow[] = [];
      const alertSlots = opts.alertConcurrency - alerts.size;
      let alertsFull = false;
      if (alertSlots > 0 && o.alerts !== false) {
        const { workerId, now } = o;
        const got = await claimJobs(db, { workerId, now, limit: alertSlots, lane: 'alert' });
        for (const j of got) alerts.set(j.id, j);
        alertsFull = got.length === alertSlots;
        jobs.push(...got);
      }
      const eventSlots = Math.min(o.eventLimit ?? Infinity, opts.concurrency - events.size);
      if (eventSlots > 0) {
        const got = await claimFairly(db, {
          workerId: o.workerId,
          now: o.now,
          limit: eventSlots,
          excludeIds: ids(),
          holding,
          holdingTopics,
          cap,
          concurrency: opts.concurrency,
          topicShare: opts.portalShare,
          after,
          afterTopic,
          duePortalsMemo,
          portalLimits: o.portalLimits,
        });
        for (const j of got) {
          events.set(j.id, j);
          add(holding, portalOf(j), 1);
          add(holdingTopics, topicKey(portalOf(j), j.topic), 1);
          afterTopic.set(portalOf(j), j.topic ?? '');
        }
        const last = got.at(-1);
        if (last) after = portalOf(last);
        jobs.push(...got);
      }
      return { jobs, eventSlots, alertsFull };
    },
    release(job, o = {}) {
      if (alerts.delete(job.id)) return;
      if (!events.delete(job.id)) return;
      add(holding, portalOf(job), -1);
      add(holdingTopics, topicKey(portalOf(job), job.topic), -1);
      if (o.yielded) {
        after = portalOf(job);
        afterTopic.set(portalOf(job), job.topic ?? '');
      }
    },
    ids,
    get size() {
      return events.size + alerts.size;
    },
  };
}
