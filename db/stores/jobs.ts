import type { Knex } from 'knex';
import { isPg, unindexedEquals } from '../connect.js';
import { markEventsProcessing } from './events.js';
import { liveInstanceKeys } from './instances.js';

/** Job kinds the worker knows (see server/queue/); `alert` is one alert on one channel (server/alerts/). */
export type JobType = 'process_event' | 'lifecycle' | 'alert';

/** A row of `jobs` as the store returns it (numbers normalised on every database). */
export interface JobRow {
  id: number;
  type: JobType;
  event_id: number | null;
  portal_id: number | null;
  entity_key: string | null;
  payload: string | null;
  status: 'pending' | 'running' | 'done' | 'dead';
  attempts: number;
  max_attempts: number;
  run_at: number;
  locked_at: number | null;
  locked_by: string | null;
  last_error: string | null;
  /** The destination (server/queue/destinations.ts) this job waits for, if any. */
  waiting_for?: string | null;
  /** What its rules are chosen by: the event name; '' for proof and alert jobs (migration 0019). */
  topic?: string;
}

export interface NewJob {
  type: JobType;
  event_id: number | null;
  portal_id: number | null;
  entity_key: string | null;
  payload: string | null;
  max_attempts: number;
  run_at: number;
  /** The event name of a `process_event` or `lifecycle` job (fair claiming inside a portal). */
  topic?: string;
}

export function jobRow(job: NewJob, now: number) {
  return {
    ...job,
    topic: job.topic ?? '',
    status: 'pending',
    attempts: 0,
    created_at: now,
    updated_at: now,
  };
}

export async function insertJobs(db: Knex, jobs: NewJob[], now: number): Promise<void> {
  for (let i = 0; i < jobs.length; i += 400) {
    await db('jobs').insert(jobs.slice(i, i + 400).map((j) => jobRow(j, now)));
  }
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export function normaliseJob(r: Record<string, unknown>): JobRow {
  return {
    ...(r as unknown as JobRow),
    id: Number(r.id),
    event_id: num(r.event_id),
    portal_id: num(r.portal_id),
    attempts: Number(r.attempts),
    max_attempts: Number(r.max_attempts),
    run_at: Number(r.run_at),
    locked_at: num(r.locked_at),
  };
}

/**
 * Which jobs a claim takes: `alert` jobs have a lane of their own (they must never queue
 * behind event work); `events` is every other type; `all` (the default) both.
 */
export type ClaimLane = 'all' | 'alert' | 'events';

export interface ClaimOptions {
  workerId: string;
  now: number;
  limit: number;
  excludeIds?: readonly number[];
  /** @default 'all' */
  lane?: ClaimLane;
}

/**
 * Due, pending jobs whose entity has no earlier job still pending or running, in (run_at, id)
 * order: so the events of one entity run one at a time and in arrival order, and different
 * entities run in parallel.
 *
 * On PostgreSQL several instances claim at once: the candidates are read `FOR UPDATE SKIP
 * LOCKED`, so an instance passes over rows another one is claiming instead of queueing
 * behind it. Per-entity order holds across instances: an entity's next job is a candidate
 * only once every earlier one is committed as done or dead, and a job being claimed (locked
 * but still `pending` to others) keeps its successors out, since they see it pending.
 */
function claimable(trx: Knex, o: ClaimOptions, limit: number, lock = true) {
  const q = trx('jobs as j')
    .select('j.*')
    .where('j.status', 'pending')
    .where('j.run_at', '<=', o.now)
    .where((w) =>
      w.whereNull('j.entity_key').orWhereNotExists(function () {
        this.select(trx.raw('1'))
          .from('jobs as k')
          .whereRaw('k.entity_key = j.entity_key')
          .whereRaw('k.id < j.id')
          .whereIn('k.status', ['pending', 'running']);
      }),
    )
    .orderBy([
      { column: 'j.run_at', order: 'asc' },
      { column: 'j.id', order: 'asc' },
    ])
    .limit(limit);
  if (o.lane === 'alert') q.where('j.type', 'alert');
  else if (o.lane === 'events') q.whereNot('j.type', 'alert');
  if (o.excludeIds?.length) q.whereNotIn('j.id', o.excludeIds);
  if (lock && isPg(trx)) q.forUpdate('j').skipLocked();
  return q;
}

/**
 * Takes the lease on rows read by `claimable` (same transaction), and marks the events of
 * the `process_event` jobs taken `processing` in it too.
 */
async function lease(
  trx: Knex.Transaction,
  rows: JobRow[],
  o: { workerId: string; now: number },
): Promise<JobRow[]> {
  const leased = await leaseJobs(trx, rows, o);
  const runs = leased.flatMap((j) =>
    j.type === 'process_event' && j.event_id !== null
      ? [{ eventId: j.event_id, attempts: j.attempts }]
      : [],
  );
  await markEventsProcessing(trx, runs, o.now);
  return leased;
}

async function leaseJobs(
  trx: Knex.Transaction,
  rows: JobRow[],
  o: { workerId: string; now: number },
): Promise<JobRow[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const claimed = await trx('jobs')
    .whereIn('id', ids)
    .where(unindexedEquals(trx, 'status', 'pending'))
    .update({
      status: 'running',
      locked_at: o.now,
      locked_by: o.workerId,
      waiting_for: null,
      attempts: trx.raw('attempts + 1'),
      updated_at: o.now,
    });
  if (claimed !== rows.length) {
    // Another instance took some of them between our read and write: keep only ours.
    const mine = (await trx('jobs')
      .whereIn('id', ids)
      .where({ status: 'running', locked_by: o.workerId, locked_at: o.now })
      .select('*')) as Record<string, unknown>[];
    return mine.map(normaliseJob);
  }
  return rows.map((r) => ({
    ...r,
    status: 'running' as const,
    attempts: r.attempts + 1,
    locked_at: o.now,
    locked_by: o.workerId,
  }));
}

/** Claims up to `limit` due jobs for `workerId`, oldest first (see `claimable`). */
export async function claimJobs(db: Knex, opts: ClaimOptions): Promise<JobRow[]> {
  return db.transaction(async (trx) => {
    const rows = ((await claimable(trx, opts, opts.limit)) as Record<string, unknown>[]).map(
      normaliseJob,
    );
    return lease(trx, rows, opts);
  });
}

/** Jobs without a portal count as portal 0 in the round-robin (portal ids start at 1). */
export const NO_PORTAL = 0;

/**
 * Portals (ids above `after`, at most `upTo`) with a due event-lane job, ascending, at most
 * `max`. Skips along `jobs_portal_due` from one portal to the next (a loose index scan: one
 * seek per portal with pending jobs), so a backlog of 100,000 jobs costs what 10 do.
 */
async function duePortalsBetween(
  trx: Knex,
  now: number,
  after: number,
  upTo: number,
  max: number,
): Promise<number[]> {
  const sql = `
    with recursive p(pid) as (
      select (select min(portal_id) from jobs where status = 'pending' and portal_id > ?)
      union all
      select (select min(portal_id) from jobs where status = 'pending' and portal_id > p.pid)
      from p where p.pid is not null and p.pid < ?
    )
    select pid from p
    where pid is not null and pid <= ? and exists (
      select 1 from jobs d
      where d.status = 'pending' and d.portal_id = p.pid and d.run_at <= ? and d.type <> 'alert'
    )
    limit ?`;
  const res = (await trx.raw(sql, [after, upTo, upTo, now, max])) as
    { rows: { pid: number | string }[] } | { pid: number | string }[];
  const rows = Array.isArray(res) ? res : res.rows;
  return rows.map((r) => Number(r.pid));
}

/** Due jobs read directly, at most, before the skip along portals takes over. */
export const FEW_DUE_JOBS = 200;

/**
 * The portals of the due event-lane jobs (ascending, without NO_PORTAL), read along
 * `jobs_due` when there are at most FEW_DUE_JOBS of them; undefined when there are more.
 * The skip along `jobs_portal_due` visits every portal with a pending job, due or not: with
 * thousands of portals each holding a retry hours away, every claim walked them all (7–8 ms
 * on the main thread at 5,000 portals, against under 1 ms without them). Few due jobs are
 * the usual case then, and their portals are read straight from them.
 */
async function portalsOfFewDueJobs(trx: Knex, now: number): Promise<number[] | undefined> {
  const rows = (await trx('jobs')
    .where('status', 'pending')
    .where('run_at', '<=', now)
    .whereNot('type', 'alert')
    .orderBy('run_at')
    .limit(FEW_DUE_JOBS + 1)
    .select('portal_id')) as Array<{ portal_id: number | string | null }>;
  if (rows.length > FEW_DUE_JOBS) return undefined;
  const ids = new Set<number>();
  for (const r of rows) if (r.portal_id !== null) ids.add(Number(r.portal_id));
  return [...ids].sort((a, b) => a - b);
}

/** Other portals with due jobs that otherPortalDue asks a claim's question about, at most. */
const OTHERS_ASKED = 4;

/**
 * Whether an event-lane job of another portal than `portalId` (or one without a portal) could
 * be claimed now: a long job then gives its worker slot back between two steps
 * (server/queue/slot-turn.ts). A due job held behind an earlier one of its entity (a deal's
 * first event retrying, for hours) cannot take the slot, so each portal found due is asked
 * what a claim would take, by its own range of `jobs_portal_due`: never along `jobs_due`,
 * where `portalId`'s own backlog would be read row by row. Costs the look at the portals
 * (see portalsWithDueJobs) and at most OTHERS_ASKED + 1 such questions; with more portals
 * due than that, true.
 */
export async function otherPortalDue(db: Knex, now: number, portalId: number): Promise<boolean> {
  // `portalId` itself is one of them at most once.
  const { list } = await portalsWithDueJobs(db, now, portalId, OTHERS_ASKED + 2);
  const others = list.filter((p) => p !== portalId);
  if (portalId !== NO_PORTAL && (await orphanDue(db, now)) && (await claimableOf(db, now, null)))
    return true;
  for (const p of others.slice(0, OTHERS_ASKED)) if (await claimableOf(db, now, p)) return true;
  return others.length > OTHERS_ASKED;
}

/** Whether a claim would take a due event-lane job of the portal (null: of none) now. */
async function claimableOf(db: Knex, now: number, portalId: number | null): Promise<boolean> {
  const q = claimable(db, { workerId: '', now, limit: 1, lane: 'events' }, 1, false);
  if (portalId === null) q.whereNull('j.portal_id');
  else q.where('j.portal_id', portalId);
  return (await q).length > 0;
}

/**
 * Portals with due event-lane jobs in round-robin order: those after `after` first, then
 * from the start; `NO_PORTAL` first when jobs without a portal are due.
 */
export async function duePortals(
  trx: Knex.Transaction,
  now: number,
  after: number,
  max = 256,
): Promise<number[]> {
  const { list } = await portalsWithDueJobs(trx, now, after, max);
  return withOrphans(trx, now, list);
}

/** duePortals without NO_PORTAL, and whether it had to skip along the portals. */
async function portalsWithDueJobs(
  trx: Knex,
  now: number,
  after: number,
  max: number,
): Promise<{ list: number[]; walked: boolean }> {
  const top = 2 ** 31 - 1; // portals.id is an integer column (PostgreSQL would refuse more)
  const few = await portalsOfFewDueJobs(trx, now);
  if (few) return { list: roundRobin(few, after).slice(0, max), walked: false };
  const list = await duePortalsBetween(trx, now, after, top, max);
  if (list.length < max && after > 0) {
    list.push(...(await duePortalsBetween(trx, now, 0, after, max - list.length)));
  }
  return { list, walked: true };
}

/** `NO_PORTAL` in front of `list` when jobs without a portal are due. */
async function withOrphans(trx: Knex.Transaction, now: number, list: number[]): Promise<number[]> {
  return (await orphanDue(trx, now)) ? [NO_PORTAL, ...list] : list;
}

/** Whether an event-lane job without a portal is due (one seek along `jobs_portal_due`). */
async function orphanDue(db: Knex, now: number): Promise<boolean> {
  const orphan = await db('jobs')
    .where('status', 'pending')
    .whereNull('portal_id')
    .where('run_at', '<=', now)
    .whereNot('type', 'alert')
    .first('id');
  return orphan !== undefined;
}

/** Ascending `ids` as a ring starting after `after`. */
const roundRobin = (ids: readonly number[], after: number): number[] => [
  ...ids.filter((p) => p > after),
  ...ids.filter((p) => p <= after),
];

/** How long the portals a skip found are used again before the next skip (real time). */
export const DUE_PORTALS_MEMO_MS = 250;

/**
 * The portals the last skip along them found, kept by one worker for DUE_PORTALS_MEMO_MS.
 * With more than FEW_DUE_JOBS due jobs the skip visits every portal with a pending job, due
 * or not: at 5,000 portals each waiting for a retry, 5–6 ms on the main thread at every
 * claim. Claims in between serve the portals it found, in the same round-robin, as long as
 * they fill every free slot; a claim they cannot fill skips again at once, so a portal that
 * became due meanwhile waits at most DUE_PORTALS_MEMO_MS while others keep every slot busy.
 */
export interface DuePortalsMemo {
  /** Ascending portal ids (without NO_PORTAL), and when (performance.now()) they were found. */
  ids?: number[];
  at?: number;
  /** How long they are used: DUE_PORTALS_MEMO_MS unless given. */
  ms?: number;
}

export interface FairClaimOptions {
  workerId: string;
  now: number;
  /** Free worker slots. */
  limit: number;
  excludeIds?: readonly number[];
  /** Event-lane jobs this worker runs now, per portal (NO_PORTAL for none). */
  holding: ReadonlyMap<number, number>;
  /** The same, per topic of a portal (`topicKey`). */
  holdingTopics?: ReadonlyMap<string, number>;
  /** Most jobs one portal may hold while other portals have due jobs. */
  cap: number;
  /** Event-lane slots in all (WORKER_CONCURRENCY): what a portal alone may hold. */
  concurrency?: number;
  /**
   * Share of what its portal may hold that one topic may hold while other topics of the
   * portal have due jobs (WORKER_PORTAL_SHARE). @default 0.5
   */
  topicShare?: number;
  /** The portal served last: the round-robin goes on after it. */
  after: number;
  /** The topic of each portal served last: its topics' round-robin goes on after it. */
  afterTopic?: ReadonlyMap<number, string>;
  /** The worker's memo of the portals a skip found (see DuePortalsMemo). */
  duePortalsMemo?: DuePortalsMemo;
  /** Most jobs this claim may take of these portals (0: none), whatever else they may hold. */
  portalLimits?: ReadonlyMap<number, number>;
}

/** Key of a portal's topic in `holdingTopics`. */
export const topicKey = (portal: number, topic: string | undefined): string =>
  `${portal}\u0000${topic ?? ''}`;

/**
 * Fair claiming: hands the free slots out one at a time, round-robin across the
 * portals with due jobs, a portal getting no more once it holds `cap` while another portal
 * has due jobs (alone, it may take every slot); then takes each portal's share in its own
 * (run_at, id) order, per-entity order kept as in `claimJobs`. Slots a portal could not use
 * (its due jobs wait for an earlier job of their entity) go to the others. Inside a portal
 * with due jobs of several topics, its share is handed out the same way across its topics
 * (`claimTopics`).
 */
export async function claimFairly(db: Knex, o: FairClaimOptions): Promise<JobRow[]> {
  return db.transaction(async (trx) => {
    const taken: JobRow[] = [];
    const exclude = [...(o.excludeIds ?? [])];
    const memo = o.duePortalsMemo;
    if (
      memo?.ids &&
      memo.at !== undefined &&
      performance.now() - memo.at < (memo.ms ?? DUE_PORTALS_MEMO_MS)
    ) {
      // Capped even when the memo names one portal: another may have fallen due since the
      // skip, and a portal holding its share leaves the slots to the skip that finds it.
      await claimAcross(
        trx,
        o,
        await withOrphans(trx, o.now, roundRobin(memo.ids, o.after)),
        { taken, exclude },
        true,
      );
      if (taken.length >= o.limit) return lease(trx, taken, o);
    }
    const found = await portalsWithDueJobs(trx, o.now, o.after, 256);
    if (memo) {
      memo.ids = found.walked ? [...found.list].sort((a, b) => a - b) : undefined;
      memo.at = performance.now();
    }
    const portals = await withOrphans(trx, o.now, found.list);
    if (portals.length > 0) await claimAcross(trx, o, portals, { taken, exclude });
    return lease(trx, taken, o);
  });
}

/** Hands what is left of `o.limit` out over `portals` (claimFairly), adding to `taken`. */
async function claimAcross(
  trx: Knex.Transaction,
  o: FairClaimOptions,
  portals: readonly number[],
  acc: { taken: JobRow[]; exclude: number[] },
  alwaysCapped = false,
): Promise<void> {
  const { taken, exclude } = acc;
  // A portal this claim may take nothing of (sending a flood, not its turn) does not compete
  // for the slots: the others may take them all, as if it had no due jobs.
  const limits = o.portalLimits;
  if (limits) portals = portals.filter((p) => limits.get(p) !== 0);
  const capped = alwaysCapped || portals.length > 1;
  const share = o.topicShare ?? 0.5;
  const topicCap = Math.max(1, Math.floor((capped ? o.cap : (o.concurrency ?? o.cap)) * share));
  const full = new Set<number>();
  let left = o.limit - taken.length;
  for (let round = 0; round < 2 && left > 0; round++) {
    const open = portals.filter((p) => round === 0 || full.has(p));
    const quota = spread(open, left, (p) => {
      const limit = o.portalLimits?.get(p);
      const room = capped ? o.cap - (o.holding.get(p) ?? 0) : Infinity;
      return Math.min(room, limit ?? Infinity) - count(taken, portalOf, p);
    });
    full.clear();
    for (const [p, n] of quota) {
      const rows =
        p === NO_PORTAL
          ? await claimWhere(trx, o, exclude, n, (q) => q.whereNull('j.portal_id'))
          : await claimTopics(trx, o, { exclude, portal: p, n, cap: topicCap, taken });
      taken.push(...rows);
      if (rows.length === n) full.add(p);
      else if (p !== NO_PORTAL && round === 0) await deferBlocked(trx, p, o.now);
      left -= rows.length;
    }
    if (full.size === 0) break;
  }
}

/** Due jobs at the front of a portal's queue looked at by `deferBlocked`. */
const BLOCKED_LOOK = 16;
/** Most jobs of one entity `deferBlocked` moves at a time (a statement of bounded cost). */
export const BLOCKED_DEFER_MAX = 5000;

/**
 * A portal's claim came back short: jobs due at the front of its queue whose entity's first
 * job waits for a retry later are moved to that retry's time, when they may run at the
 * earliest. Left due, each claim (every finished job, every delivery: on SQLite on the
 * main thread) read every one of them and refused it: a tenant whose step fails on one deal
 * could post 100,000 updates of that deal and make each claim take 50 ms (the event loop
 * held 85 % of the time, every portal's intake and processing slowed). Moved, they are
 * out of the due range, and due again exactly when their entity's first job is; if that
 * one fails again, the next short claim moves them on. Returns how many were moved.
 */
export async function deferBlocked(
  trx: Knex.Transaction,
  portal: number,
  now: number,
): Promise<number> {
  const front = (await trx
    .from(
      trx('jobs')
        .select('id', 'entity_key')
        .where({ status: 'pending', portal_id: portal })
        .where('run_at', '<=', now)
        .orderBy([
          { column: 'run_at', order: 'asc' },
          { column: 'id', order: 'asc' },
        ])
        .limit(BLOCKED_LOOK)
        .as('d'),
    )
    .select('d.id', 'd.entity_key')
    .whereNotNull('d.entity_key')) as Array<{ id: number | string; entity_key: string }>;
  let moved = 0;
  const seen = new Set<string>();
  for (const r of front) {
    if (seen.has(r.entity_key)) continue;
    seen.add(r.entity_key);
    const head = await entityHead(trx, r.entity_key);
    if (!head || head.id >= Number(r.id) || head.status !== 'pending' || head.runAt <= now)
      continue;
    moved += await trx('jobs')
      .whereIn(
        'id',
        trx('jobs')
          .select('id')
          .where({ entity_key: r.entity_key, status: 'pending' })
          .where('id', '>', head.id)
          .where('run_at', '<', head.runAt)
          .orderBy('id')
          .limit(BLOCKED_DEFER_MAX),
      )
      .update({ run_at: head.runAt });
  }
  return moved;
}

/** The first unfinished job of an entity (one index seek per status). */
async function entityHead(
  trx: Knex.Transaction,
  key: string,
): Promise<{ id: number; status: string; runAt: number } | undefined> {
  let head: { id: number; status: string; runAt: number } | undefined;
  for (const status of ['pending', 'running']) {
    const first = (await trx('jobs')
      .where({ entity_key: key, status })
      .min({ id: 'id' })
      .first()) as { id: number | string | null } | undefined;
    if (first?.id === null || first?.id === undefined) continue;
    const id = Number(first.id);
    if (head && head.id < id) continue;
    const row = (await trx('jobs').where({ id }).first('run_at')) as { run_at: number | string };
    head = { id, status, runAt: Number(row.run_at) };
  }
  return head;
}

const portalOf = (j: JobRow) => j.portal_id ?? NO_PORTAL;

const count = <K>(jobs: readonly JobRow[], keyOf: (j: JobRow) => K, key: K) =>
  jobs.reduce((n, j) => n + (keyOf(j) === key ? 1 : 0), 0);

/**
 * `slots` handed out one at a time, round-robin over `keys` in their order, a key getting
 * no more than `room(key)` (what it may still take); keys that got none are left out.
 */
function spread<K>(keys: readonly K[], slots: number, room: (k: K) => number): Map<K, number> {
  const quota = new Map<K, number>();
  let moved = true;
  while (slots > 0 && moved) {
    moved = false;
    for (const k of keys) {
      if (slots === 0) break;
      const n = quota.get(k) ?? 0;
      if (n >= room(k)) continue;
      quota.set(k, n + 1);
      slots--;
      moved = true;
    }
  }
  return quota;
}

/** Up to `n` event-lane jobs narrowed by `where`, in claim order (see `claimable`). */
async function claimWhere(
  trx: Knex.Transaction,
  o: FairClaimOptions,
  exclude: number[],
  n: number,
  where: (q: Knex.QueryBuilder) => Knex.QueryBuilder,
): Promise<JobRow[]> {
  const q = claimable(trx, { ...o, lane: 'events', excludeIds: exclude }, n);
  const rows = ((await where(q)) as Record<string, unknown>[]).map(normaliseJob);
  for (const r of rows) exclude.push(r.id);
  return rows;
}

/**
 * A portal's `n` slots, round-robin across its due topics (event names), starting after
 * the topic served last; a topic gets no more once it holds `cap` while another topic has
 * due jobs. So while the target of one event's rules hangs, that event's jobs hold at most
 * `cap` of the portal's slots and its other events go on. Slots a topic could not use (its
 * due jobs wait for an earlier job of their entity) go to the topics that may take more.
 */
async function claimTopics(
  trx: Knex.Transaction,
  o: FairClaimOptions,
  a: { exclude: number[]; portal: number; n: number; cap: number; taken: readonly JobRow[] },
): Promise<JobRow[]> {
  const { exclude, portal, cap, taken } = a;
  const all = await dueTopics(trx, portal, o.now);
  if (all.length <= 1) {
    return claimWhere(trx, o, exclude, a.n, (q) => q.where('j.portal_id', portal));
  }
  const after = o.afterTopic?.get(portal);
  const topics =
    after === undefined ? all : [...all.filter((t) => t > after), ...all.filter((t) => t <= after)];
  const got: JobRow[] = [];
  const keyOf = (j: JobRow) => topicKey(portalOf(j), j.topic);
  const holds = (t: string) =>
    (o.holdingTopics?.get(topicKey(portal, t)) ?? 0) +
    count(taken, keyOf, topicKey(portal, t)) +
    count(got, keyOf, topicKey(portal, t));
  let open = topics;
  for (let round = 0; round < 2 && got.length < a.n && open.length > 0; round++) {
    const full = new Set<string>();
    for (const [t, k] of spread(open, a.n - got.length, (x) => cap - holds(x))) {
      const rows = await claimWhere(trx, o, exclude, k, (q) =>
        q.where('j.portal_id', portal).where('j.topic', t),
      );
      got.push(...rows);
      if (rows.length === k) full.add(t);
    }
    open = topics.filter((t) => full.has(t));
  }
  return got;
}

/**
 * A portal's topics with a due event-lane job, ascending (at most 64). Skips along
 * `jobs_topic_due` from one topic to the next: one seek per topic, whatever the backlog.
 */
async function dueTopics(trx: Knex.Transaction, portal: number, now: number): Promise<string[]> {
  const sql = `
    with recursive t(topic, n) as (
      select (select min(topic) from jobs where status = 'pending' and portal_id = ?), 1
      union all
      select (select min(topic) from jobs where status = 'pending' and portal_id = ? and topic > t.topic), t.n + 1
      from t where t.topic is not null and t.n < 64
    )
    select topic from t
    where topic is not null and exists (
      select 1 from jobs d
      where d.status = 'pending' and d.portal_id = ? and d.topic = t.topic and d.run_at <= ?
        and d.type <> 'alert'
    )`;
  const res = (await trx.raw(sql, [portal, portal, portal, now])) as
    { rows: { topic: string }[] } | { topic: string }[];
  return (Array.isArray(res) ? res : res.rows).map((r) => r.topic);
}

export async function completeJob(db: Knex, id: number, now: number): Promise<void> {
  await db('jobs').where({ id }).update({
    status: 'done',
    locked_at: null,
    locked_by: null,
    last_error: null,
    updated_at: now,
  });
}

export async function rescheduleJob(
  db: Knex,
  id: number,
  values: {
    runAt: number;
    lastError: string | null;
    refundAttempt?: boolean;
    /** The destination it waits for (an open circuit). */
    waitingFor?: string;
    now: number;
  },
): Promise<void> {
  await db('jobs')
    .where({ id })
    .update({
      status: 'pending',
      run_at: values.runAt,
      last_error: values.lastError,
      waiting_for: values.waitingFor ?? null,
      locked_at: null,
      locked_by: null,
      updated_at: values.now,
      ...(values.refundAttempt ? { attempts: db.raw('attempts - 1') } : {}),
    });
}

export async function killJob(db: Knex, id: number, lastError: string, now: number): Promise<void> {
  await db('jobs').where({ id }).update({
    status: 'dead',
    last_error: lastError,
    locked_at: null,
    locked_by: null,
    updated_at: now,
  });
}

/**
 * Makes every pending job of a portal due now, for a portal that is gone for good
 * (uninstalled): each then ends at once (its event `skipped`, "portal is not installed")
 * instead of waiting in the backlog for its next retry, up to 6 h away. Read along
 * `jobs_portal_due` (status, portal_id, run_at). Returns how many.
 */
export async function hastenPortalJobs(db: Knex, portalId: number, now: number): Promise<number> {
  return db('jobs')
    .where({ status: 'pending', portal_id: portalId })
    .where('run_at', '>', now)
    .update({ run_at: now, waiting_for: null, updated_at: now });
}

/**
 * Queues a job unless one it conflicts with is pending (a portal's proof job: the unique
 * partial index jobs_one_pending_proof), with the attempts spent so far and why it waits.
 * Returns whether it was queued.
 */
export async function queueUnlessPending(
  db: Knex,
  job: NewJob,
  carried: { attempts: number; lastError: string | null },
  now: number,
): Promise<boolean> {
  const rows = (await db('jobs')
    .insert({ ...jobRow(job, now), attempts: carried.attempts, last_error: carried.lastError })
    .onConflict()
    .ignore()
    .returning('id')) as unknown[];
  return rows.length > 0;
}

/**
 * Makes a pending job of this entity key due now (a portal's proof job that waits to look
 * again, when a delivery that can prove the token arrives meanwhile). Returns how many.
 */
export async function hastenEntityJob(db: Knex, entityKey: string, now: number): Promise<number> {
  return db('jobs')
    .where({ status: 'pending', entity_key: entityKey })
    .where('run_at', '>', now)
    .update({ run_at: now, updated_at: now });
}

/** Work left `running` by a process that died: leases older than `staleBefore` go back to pending. */
export async function releaseStaleJobs(
  db: Knex,
  staleBefore: number,
  now: number,
): Promise<number> {
  return backToQueue(db, (q) => q.where('locked_at', '<', staleBefore), now);
}

type Scope = (q: Knex.QueryBuilder) => Knex.QueryBuilder;

/**
 * Running jobs in `scope` go back to pending (a process that is gone or stops). A portal's
 * proof job that ran while a delivery queued the portal's next one (the unique partial index
 * jobs_one_pending_proof holds one pending proof job per portal, db/migrations/0010) ends
 * instead: pending again it would be a second one, and the update of every job in scope
 * would fail on the index, every time it is tried. The pending one does the same work.
 */
async function backToQueue(
  db: Knex,
  scope: Scope,
  now: number,
  extra: Record<string, unknown> = {},
): Promise<number> {
  const superseded = await scope(db('jobs').where('status', 'running'))
    .where('entity_key', 'like', 'proof:%')
    .whereExists(function () {
      this.select(db.raw('1'))
        .from('jobs as p')
        .whereRaw('p.entity_key = jobs.entity_key')
        .where('p.status', 'pending');
    })
    .update({ status: 'done', locked_at: null, locked_by: null, updated_at: now });
  const back = await scope(db('jobs').where('status', 'running')).update({
    status: 'pending',
    locked_at: null,
    locked_by: null,
    updated_at: now,
    ...extra,
  });
  return back + superseded;
}

/**
 * PostgreSQL: returns to the queue the running jobs of instances that are gone. Every live
 * instance holds the session lock (LOCK.instance, key) and leases jobs as `…#key`
 * (server/cluster/instance-lock.ts); PostgreSQL releases that lock when the instance's
 * connection drops, so a lease whose key is not locked belongs to a dead process. Leases
 * without a key (a worker without an instance lock) are left to `releaseStaleJobs`.
 */
export async function releaseOrphanedJobs(db: Knex, now: number): Promise<number> {
  const live = await liveInstanceKeys(db);
  const leases = (await db('jobs')
    .where('status', 'running')
    .where('locked_by', 'like', '%#%')
    .distinct('locked_by')) as { locked_by: string }[];
  const gone = leases
    .map((r) => r.locked_by)
    .filter((by) => {
      const key = /#(\d+)$/.exec(by)?.[1];
      return key !== undefined && !live.has(Number(key));
    });
  if (gone.length === 0) return 0;
  return backToQueue(db, (q) => q.whereIn('locked_by', gone), now);
}

/** Who holds running jobs now (`locked_by` values), with when each took its newest lease. */
export async function runningHolders(
  db: Knex,
): Promise<Array<{ holder: string; lockedAt: number }>> {
  const rows = (await db('jobs')
    .where('status', 'running')
    .whereNotNull('locked_by')
    .groupBy('locked_by')
    .select('locked_by')
    .max({ at: 'locked_at' })) as Array<{ locked_by: string; at: number | string | null }>;
  return rows.map((r) => ({ holder: r.locked_by, lockedAt: Number(r.at ?? 0) }));
}

/** Returns the running jobs of these holders (processes known to be gone) to the queue. */
export async function releaseHolders(
  db: Knex,
  holders: readonly string[],
  now: number,
): Promise<number> {
  if (holders.length === 0) return 0;
  return backToQueue(db, (q) => q.whereIn('locked_by', holders), now);
}

/** Gives back this worker's unfinished claims (graceful shutdown), refunding the attempt. */
export async function releaseJobs(
  db: Knex,
  workerId: string,
  ids: readonly number[],
  now: number,
): Promise<number> {
  if (ids.length === 0) return 0;
  return backToQueue(db, (q) => q.whereIn('id', ids).where('locked_by', workerId), now, {
    attempts: db.raw('attempts - 1'),
  });
}

export async function getJob(db: Knex, id: number): Promise<JobRow | undefined> {
  const r = (await db('jobs').where({ id }).first()) as Record<string, unknown> | undefined;
  return r ? normaliseJob(r) : undefined;
}

/**
 * The next time a pending job becomes due (for the worker's sleep); with `after`, the first
 * one due later than that (what is due already could not be claimed).
 */
export async function nextDueAt(db: Knex, after?: number): Promise<number | undefined> {
  const q = db('jobs').where('status', 'pending');
  if (after !== undefined) q.where('run_at', '>', after);
  const r = (await q.min({ t: 'run_at' }).first()) as { t: number | string | null } | undefined;
  return r?.t === null || r?.t === undefined ? undefined : Number(r.t);
}

/**
 * Entities of a portal's process_event jobs that are due now, oldest first: what the
 * processor reads ahead in one batch.
 */
export async function dueEntityRefs(
  db: Knex,
  portalId: number,
  now: number,
  limit: number,
): Promise<Array<{ type: string; id: string }>> {
  const rows = (await db('jobs')
    .where({ portal_id: portalId, type: 'process_event', status: 'pending' })
    .orderBy('id')
    .limit(limit * 4)
    .select('entity_key', 'run_at')) as { entity_key: string | null; run_at: number | string }[];
  const seen = new Set<string>();
  const out: Array<{ type: string; id: string }> = [];
  // run_at is checked here, not in SQL, so the query walks jobs_portal_pending in id order
  // instead of sorting the due jobs of every portal.
  for (const r of rows) {
    if (r.entity_key === null || Number(r.run_at) > now || seen.has(r.entity_key)) continue;
    seen.add(r.entity_key);
    // `${portalId}:${type}:${id}`; the type itself may hold a colon (dynamic:128).
    const first = r.entity_key.indexOf(':');
    const last = r.entity_key.lastIndexOf(':');
    if (first < 0 || last <= first) continue;
    out.push({ type: r.entity_key.slice(first + 1, last), id: r.entity_key.slice(last + 1) });
    if (out.length >= limit) break;
  }
  return out;
}
