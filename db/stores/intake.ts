import type { Knex } from 'knex';
import type { EventRow } from './events.js';
import { jobRow, type NewJob } from './jobs.js';
import { RollupDeltas, rollupStatements } from './rollups.js';

/** One delivery ready to be written by the intake's group commit. */
export interface IntakeRow {
  event: Pick<
    EventRow,
    | 'portal_id'
    | 'member_id'
    | 'event'
    | 'event_handler_id'
    | 'entity_type'
    | 'entity_id'
    | 'ts'
    | 'body'
    | 'auth_enc'
    | 'dedupe_key'
    | 'reject_reason'
    | 'source'
    | 'received_at'
    | 'remote_addr'
  > & { status: 'received' | 'unverified' | 'rejected' };
  /**
   * The job to create with the event (accepted deliveries only). A `detached` job is about
   * the portal, not this event (a proof job): it gets no event_id, and it is not inserted
   * when one with its entity key is already pending (unique index of migration 0010).
   */
  job: (Omit<NewJob, 'event_id'> & { detached?: boolean }) | null;
}

export interface IntakeOutcome {
  /** The stored event id (the original's, for a duplicate); null for rejected rows. */
  eventId: number | null;
  duplicate: boolean;
}

/** The event columns the intake writes, in binding order. */
const EVENT_COLUMNS = [
  'portal_id',
  'member_id',
  'event',
  'event_handler_id',
  'entity_type',
  'entity_id',
  'ts',
  'body',
  'auth_enc',
  'dedupe_key',
  'status',
  'reject_reason',
  'source',
  'received_at',
  'remote_addr',
] as const satisfies ReadonlyArray<keyof IntakeRow['event']>;

const JOB_COLUMNS = [
  'type',
  'event_id',
  'portal_id',
  'entity_key',
  'payload',
  'topic',
  'status',
  'attempts',
  'max_attempts',
  'run_at',
  'created_at',
  'updated_at',
] as const satisfies ReadonlyArray<keyof ReturnType<typeof jobRow>>;

type Binding = string | number | null;
type Id = { id: number | string };

/**
 * Most rows per INSERT. A batch is cut into power-of-two chunks up to this size, so only a
 * handful of statement texts ever occur and a statement cache (db/connect.ts
 * `statementCache`) prepares each once instead of once per batch.
 */
export const MAX_INSERT_ROWS = 64;

const tuple = (n: number) => `(${new Array<string>(n).fill('?').join(', ')})`;
const EVENT_TUPLE = tuple(EVENT_COLUMNS.length);
const JOB_TUPLE = tuple(JOB_COLUMNS.length);
const repeated = (s: string, n: number) => new Array<string>(n).fill(s).join(', ');

const insertEventsSql = memo(
  (n: number) =>
    `insert into events (${EVENT_COLUMNS.join(', ')}) values ${repeated(EVENT_TUPLE, n)} ` +
    'on conflict (dedupe_key) do nothing returning id, dedupe_key',
);
const insertJobsSql = memo(
  (n: number) =>
    `insert into jobs (${JOB_COLUMNS.join(', ')}) values ${repeated(JOB_TUPLE, n)} ` +
    'on conflict do nothing',
);
/** Rows without a dedupe key (rejected deliveries) go one by one: nothing else maps them. */
const INSERT_UNKEYED_EVENT = `insert into events (${EVENT_COLUMNS.join(', ')}) values ${EVENT_TUPLE} returning id`;
const COUNT_REPEATS =
  'update events set duplicates = duplicates + ? where dedupe_key = ? returning id';

function memo(f: (n: number) => string): (n: number) => string {
  const texts = new Map<number, string>();
  return (n) => {
    let text = texts.get(n);
    if (text === undefined) texts.set(n, (text = f(n)));
    return text;
  };
}

/** `n` rows as power-of-two chunks of at most MAX_INSERT_ROWS, largest first. */
export function chunkSizes(n: number): number[] {
  const sizes: number[] = [];
  while (n > 0) {
    let size = MAX_INSERT_ROWS;
    while (size > n) size >>= 1;
    sizes.push(size);
    n -= size;
  }
  return sizes;
}

/** Rows of a raw statement: an array on SQLite, `{ rows }` on PostgreSQL. */
const rowsOf = <T>(answer: unknown): T[] =>
  (Array.isArray(answer) ? answer : (answer as { rows: T[] }).rows) as T[];

/** One statement of a batch; the driver answers with the rows it returned (or none). */
export interface IntakeStep {
  sql: string;
  bindings: Binding[];
}

/**
 * The statements that write a batch of deliveries, as a generator: each `yield` hands a
 * statement to the driver and receives its RETURNING rows; the return value is an outcome
 * per input row, in order. The same plan runs on knex (any database, async) and on a bare
 * better-sqlite3 connection (the intake writer thread, synchronous), so both write exactly
 * the same rows. Portable SQL: `INSERT … ON CONFLICT DO NOTHING RETURNING` and
 * `UPDATE … RETURNING` work on SQLite ≥ 3.35 and PostgreSQL. RETURNING rows come back in
 * no promised order, so they are matched to deliveries by dedupe key.
 */
export function* intakeBatchPlan(
  rows: IntakeRow[],
  now: number,
): Generator<IntakeStep, IntakeOutcome[], unknown[]> {
  const outcomes = new Array<IntakeOutcome | undefined>(rows.length);
  // The first delivery of each key in this batch; identical ones after it only count.
  const firstByKey = new Map<string, number>();
  const repeats = new Map<string, number>();
  const repeat = (key: string) => repeats.set(key, (repeats.get(key) ?? 0) + 1);
  const keyed: number[] = [];
  const stored = (i: number, id: number) => (outcomes[i] = { eventId: id, duplicate: false });
  const bindEvent = (out: Binding[], i: number) => {
    const event = rows[i]!.event;
    for (const c of EVENT_COLUMNS) out.push(event[c]);
    return out;
  };

  for (let i = 0; i < rows.length; i++) {
    const key = rows[i]!.event.dedupe_key;
    if (key === null) {
      const [r] = (yield { sql: INSERT_UNKEYED_EVENT, bindings: bindEvent([], i) }) as Id[];
      stored(i, Number(r!.id));
    } else if (firstByKey.has(key)) {
      repeat(key);
    } else {
      firstByKey.set(key, i);
      keyed.push(i);
    }
  }

  let at = 0;
  for (const size of chunkSizes(keyed.length)) {
    const bindings: Binding[] = [];
    for (let j = at; j < at + size; j++) bindEvent(bindings, keyed[j]!);
    const inserted = (yield { sql: insertEventsSql(size), bindings }) as Array<
      Id & { dedupe_key: string }
    >;
    for (const r of inserted) stored(firstByKey.get(r.dedupe_key)!, Number(r.id));
    for (let j = at; j < at + size; j++) {
      const i = keyed[j]!;
      // Not inserted: stored by an earlier batch, so a repeat of that one.
      if (!outcomes[i]) repeat(rows[i]!.event.dedupe_key!);
    }
    at += size;
  }

  // Jobs in delivery order: jobs of one entity run in id order.
  const jobs: Binding[] = [];
  let jobCount = 0;
  for (let i = 0; i < rows.length; i++) {
    const job = rows[i]!.job;
    const eventId = outcomes[i]?.eventId;
    if (!job || eventId === undefined || eventId === null) continue;
    const { detached, ...fields } = job;
    const row = jobRow({ ...fields, event_id: detached ? null : eventId }, now);
    for (const c of JOB_COLUMNS) jobs.push(row[c]);
    jobCount++;
  }
  const width = JOB_COLUMNS.length;
  at = 0;
  for (const size of chunkSizes(jobCount)) {
    yield { sql: insertJobsSql(size), bindings: jobs.slice(at * width, (at + size) * width) };
    at += size;
  }

  // The batch's rollups: deliveries alike in all that is counted (the usual case) are
  // counted as one, then one upsert row per distinct key.
  const alike = new Map<string, { event: IntakeRow['event']; n: number }>();
  for (let i = 0; i < rows.length; i++) {
    const id = outcomes[i]?.eventId;
    if (id === undefined || id === null || outcomes[i]!.duplicate) continue;
    const e = rows[i]!.event;
    const key = `${e.portal_id}\u0000${e.event}\u0000${e.status}\u0000${e.source}\u0000${Math.floor(e.received_at / 3_600_000)}`;
    const group = alike.get(key);
    if (group) group.n++;
    else alike.set(key, { event: e, n: 1 });
  }
  const deltas = new RollupDeltas();
  for (const { event, n } of alike.values()) {
    deltas.event(
      { ...event, id: 0, queued_at: null, processed_at: null, sla_done_at: null },
      [],
      n,
    );
  }
  for (const s of rollupStatements(deltas.rows())) yield s;

  if (repeats.size) {
    const original = new Map<string, number | null>();
    for (const [key, n] of repeats) {
      const [r] = (yield { sql: COUNT_REPEATS, bindings: [n, key] }) as Id[];
      original.set(key, r ? Number(r.id) : null);
    }
    for (let i = 0; i < rows.length; i++) {
      if (outcomes[i]) continue;
      const key = rows[i]!.event.dedupe_key!;
      outcomes[i] = { eventId: original.get(key) ?? null, duplicate: true };
    }
  }
  return outcomes as IntakeOutcome[];
}

/**
 * Writes a batch of deliveries in ONE transaction through knex: new events, their jobs,
 * and duplicate counts on the originals of identical repeats (see intakeBatchPlan).
 */
export async function writeIntakeBatch(
  db: Knex,
  rows: IntakeRow[],
  now: number,
): Promise<IntakeOutcome[]> {
  return db.transaction(async (trx) => {
    const plan = intakeBatchPlan(rows, now);
    let step = plan.next();
    while (!step.done) {
      step = plan.next(rowsOf(await trx.raw(step.value.sql, step.value.bindings)));
    }
    return step.value;
  });
}

/** The part of a better-sqlite3 connection the synchronous writer uses. */
export interface SqliteStatementSource {
  prepare(sql: string): {
    readonly reader: boolean;
    all(...params: unknown[]): unknown[];
    run(...params: unknown[]): unknown;
  };
  transaction<T>(fn: () => T): () => T;
}

/**
 * The same batch on a bare better-sqlite3 connection, synchronously, with its statements
 * prepared once: on the intake writer thread this costs about half of going through knex,
 * whose per-transaction and per-query overhead is larger than a small batch's own work.
 */
export function sqliteIntakeWriter(
  conn: SqliteStatementSource,
): (rows: IntakeRow[], now: number) => IntakeOutcome[] {
  const statements = new Map<string, ReturnType<SqliteStatementSource['prepare']>>();
  const statement = (sql: string) => {
    let s = statements.get(sql);
    if (!s) statements.set(sql, (s = conn.prepare(sql)));
    return s;
  };
  return (rows, now) =>
    conn.transaction(() => {
      const plan = intakeBatchPlan(rows, now);
      let step = plan.next();
      while (!step.done) {
        const s = statement(step.value.sql);
        const answer = s.reader ? s.all(step.value.bindings) : (s.run(step.value.bindings), []);
        step = plan.next(answer);
      }
      return step.value;
    })();
}

/**
 * A batch as plain arrays in column order, for the writer thread: structured cloning of
 * arrays costs a fraction of cloning one object per row with fifteen named keys.
 */
export type PackedIntakeRows = Array<Binding[]>;

const JOB_FIELDS = [
  'type',
  'portal_id',
  'entity_key',
  'payload',
  'max_attempts',
  'run_at',
  'topic',
] as const satisfies ReadonlyArray<keyof NonNullable<IntakeRow['job']>>;

export function packIntakeRows(rows: readonly IntakeRow[]): PackedIntakeRows {
  return rows.map(({ event, job }) => {
    const out: Binding[] = [];
    for (const c of EVENT_COLUMNS) out.push(event[c]);
    if (job) {
      for (const f of JOB_FIELDS) out.push(job[f] ?? null);
      out.push(job.detached ? 1 : 0);
    }
    return out;
  });
}

export function unpackIntakeRows(packed: PackedIntakeRows): IntakeRow[] {
  return packed.map((values) => {
    const event: Record<string, Binding> = {};
    EVENT_COLUMNS.forEach((c, k) => (event[c] = values[k]!));
    let job: Record<string, Binding | boolean> | null = null;
    if (values.length > EVENT_COLUMNS.length) {
      job = {};
      const at = EVENT_COLUMNS.length;
      JOB_FIELDS.forEach((f, k) => (job![f] = values[at + k]!));
      if (job.topic === null) delete job.topic;
      if (values[at + JOB_FIELDS.length] === 1) job.detached = true;
    }
    return { event, job } as unknown as IntakeRow;
  });
}
