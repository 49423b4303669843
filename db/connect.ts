import fs from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';

export type Db = Knex;

export type DbTarget =
  | { readonly client: 'sqlite'; readonly filename: string }
  | { readonly client: 'pg'; readonly connectionString: string };

export interface OpenOptions {
  /** PostgreSQL only: most connections in the pool. @default 10 */
  poolSize?: number;
  /** SQLite only: how long a writer waits for the lock (see applySqlitePragmas). */
  busyTimeoutMs?: number;
  /**
   * SQLite only: keep prepared statements (keepStatements); false only to measure what
   * that saves (`npm run bench -- statements`). @default true
   */
  keepStatements?: boolean;
  /**
   * Where knex's own messages go (a failed connection, deprecations). knex writes them with
   * console.log otherwise: plain text on stdout, amid the JSON log lines and the CLI's
   * `--json` document. @default stderr
   */
  log?: (level: 'warn' | 'error' | 'debug', message: string) => void;
}

function knexLog(opts: OpenOptions): Knex.Config['log'] {
  const write =
    opts.log ?? ((level, message) => process.stderr.write(`knex ${level}: ${message}\n`));
  // knex writes an acquire error with its stack ("SqliteError: file is not a database\n    at
  // …"): the log keeps the reason, not the frames (they named our install paths on stderr).
  const withoutFrames = (t: string) =>
    t
      .split('\n')
      .filter((l) => !/^\s+at /.test(l))
      .join('\n');
  const text = (m: unknown) =>
    withoutFrames(
      typeof m === 'string' ? m : m instanceof Error ? String(m) : inspect(m, { depth: 3 }),
    );
  return {
    warn: (m: unknown) => write('warn', text(m)),
    error: (m: unknown) => write('error', text(m)),
    deprecate: (m: unknown) => write('warn', text(m)),
    debug: (m: unknown) => write('debug', text(m)),
  };
}

/**
 * node-postgres hands bigint (ids, millisecond timestamps, `count(*)`) and numeric (`avg`,
 * `sum` of bigints) back as strings, since they may exceed 2^53. Ours never do (ms since
 * the epoch, row counts), and SQLite answers numbers, so both parse to numbers: the stores
 * read the same types on either database. Per connection, not pg's global type registry.
 */
const PG_TYPES: Knex.PgConnectionConfig['types'] = {
  getTypeParser(oid: number, format: string) {
    if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) return Number;
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

interface SqliteConnection {
  pragma(s: string): unknown;
}

/** How long a SQLite write waits for another connection's lock before failing. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** The settings every SQLite connection of the app runs with (see openDb). */
export function applySqlitePragmas(
  conn: SqliteConnection,
  busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS,
): void {
  // A new file gives the space of pruned rows back to the file system a step at a time
  // (server/retention/prune.ts); it must be set before WAL creates the file. An existing
  // file keeps its mode until `b24hooks prune --vacuum`.
  conn.pragma('auto_vacuum = INCREMENTAL');
  conn.pragma('journal_mode = WAL');
  conn.pragma('synchronous = FULL');
  conn.pragma('foreign_keys = ON');
  // A deleted or rewritten row's bytes are zeroed in the page that keeps the others, at no
  // extra I/O (https://sqlite.org/pragma.html#pragma_secure_delete): erased and pruned data
  // does not linger in the file. Whole pages freed are given back by the incremental vacuum.
  conn.pragma('secure_delete = FAST');
  conn.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
}

/**
 * A new database file is readable by its owner only (0600), in a folder only the owner can
 * enter (0700), as secrets.json is: the file holds every portal's event log, its sealed
 * tokens and rule secrets, and other users of the machine have no business reading it.
 * SQLite creates the -wal and -shm files with the database file's permissions. An existing
 * file or folder keeps the permissions it has (an operator may have chosen them).
 */
export function prepareSqliteFile(filename: string): void {
  if (filename === ':memory:' || filename === '') return;
  fs.mkdirSync(path.dirname(filename), { recursive: true, mode: 0o700 });
  try {
    fs.closeSync(fs.openSync(filename, 'wx', 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/**
 * A bare better-sqlite3 connection with the same settings, for code that runs a few fixed
 * statements synchronously and cannot afford knex's per-query cost (the intake writer).
 */
export function openSqliteConnection(filename: string): BetterSqlite3.Database {
  prepareSqliteFile(filename);
  const conn = new BetterSqlite3(filename);
  applySqlitePragmas(conn);
  return conn;
}

/**
 * The intake writer thread's connection. A multi-row INSERT inside a transaction keeps a
 * statement journal (the pages it changes, to undo it alone should a later row fail); past
 * 64 KB SQLite spills it to a temporary file, so every commit of ~22 deliveries also wrote
 * about 45 pages to a file in the temp directory. Here temporary files stay in memory:
 * about 15 % less CPU per commit (test/bench/README.md). Only this connection: it runs
 * nothing but bounded inserts, whereas VACUUM or a large sort on the main connection would
 * then hold a whole temporary database in memory.
 */
export function openSqliteWriterConnection(filename: string): BetterSqlite3.Database {
  const conn = openSqliteConnection(filename);
  conn.pragma('temp_store = MEMORY');
  return conn;
}

/**
 * Opens the database. SQLite runs in WAL mode with `synchronous=FULL`, so a commit that
 * returned has reached the disk and survives a power loss; foreign keys on; a busy timeout
 * so a second process (the CLI) waits instead of failing. better-sqlite3 waits on the
 * calling thread, so the server's main connection uses a shorter one (`busyTimeoutMs`).
 * A failed statement's error carries its SQL with placeholders, not its bound values
 * (`compileSqlOnError: false`): knex would write every value into the message, and the
 * message reaches the logs, `/healthz` and the pages (e-mail addresses, chat ids, bodies).
 */
export function openDb(target: DbTarget, opts: OpenOptions = {}): Db {
  if (target.client === 'pg') {
    return knexFactory({
      client: 'pg',
      connection: { connectionString: target.connectionString, types: PG_TYPES },
      pool: { min: 0, max: opts.poolSize ?? 10 },
      log: knexLog(opts),
      compileSqlOnError: false,
    });
  }
  prepareSqliteFile(target.filename);
  const watch: StatementWatch = {};
  const db = knexFactory({
    client: 'better-sqlite3',
    connection: { filename: target.filename },
    useNullAsDefault: true,
    log: knexLog(opts),
    compileSqlOnError: false,
    pool: {
      min: 1,
      max: 1,
      afterCreate(conn: BetterSqlite3.Database, done: (err: Error | null, c: unknown) => void) {
        try {
          applySqlitePragmas(conn, opts.busyTimeoutMs);
          immediateTransactions(conn);
          if (opts.keepStatements !== false) keepStatements(conn);
          timeStatements(conn, watch);
          done(null, conn);
        } catch (e) {
          done(e as Error, conn);
        }
      },
    },
  });
  watches.set(db, watch);
  return db;
}

/**
 * Starts knex's transactions with `BEGIN IMMEDIATE`, which takes the write lock at once,
 * waiting out the busy timeout like any write. knex sends a plain (deferred) `BEGIN`: a
 * transaction that read first (a claim, an outcome's before-and-after) then met a commit of
 * another process (the operator's CLI: replay, erase, rules import) between its read and its
 * first write failed at once with SQLITE_BUSY_SNAPSHOT, which no wait cures
 * (https://www.sqlite.org/lang_transaction.html, "read transactions versus write
 * transactions"), and was taken for a storage fault. In the server the connection gate
 * already gives the main connection and the intake writer turns, so taking the lock at BEGIN
 * makes no one else wait.
 */
function immediateTransactions(conn: BetterSqlite3.Database): void {
  const prepare = conn.prepare.bind(conn);
  conn.prepare = ((sql: string) =>
    prepare(sql === 'BEGIN;' ? 'BEGIN IMMEDIATE;' : sql)) as typeof conn.prepare;
}

/** Where a connection reports how long each statement took (set by `watchStatements`). */
interface StatementWatch {
  took?: (sql: string, ms: number) => void;
}
const watches = new WeakMap<Knex, StatementWatch>();
const TIMED = Symbol('timed');

/**
 * Calls `took(sql, ms)` after every statement of `db`, a failed one too. On SQLite that is
 * time the main thread spent in it, every request waiting (BEGIN and COMMIT with its fsync
 * included); on PostgreSQL the round trip of each query knex names (transactions' BEGIN and
 * COMMIT are not), time a request waits only if it needs the answer.
 */
export function watchStatements(db: Knex, took: (sql: string, ms: number) => void): void {
  const watch = watches.get(db);
  if (watch) {
    watch.took = took;
    return;
  }
  const started = new Map<string, { sql: string; at: number }>();
  const done = (_x: unknown, q: { __knexQueryUid?: string }) => {
    const uid = q?.__knexQueryUid;
    const s = uid === undefined ? undefined : started.get(uid);
    if (!s || uid === undefined) return;
    started.delete(uid);
    took(s.sql, performance.now() - s.at);
  };
  db.on('query', (q: { __knexQueryUid?: string; sql?: string }) => {
    if (q.__knexQueryUid !== undefined && typeof q.sql === 'string') {
      started.set(q.__knexQueryUid, { sql: q.sql, at: performance.now() });
    }
  });
  db.on('query-response', done);
  db.on('query-error', done);
}

/** Times each statement `conn` runs, when `watch` asks (see watchStatements). */
function timeStatements(conn: BetterSqlite3.Database, watch: StatementWatch): void {
  const prepare = conn.prepare.bind(conn);
  conn.prepare = ((sql: string) => {
    const stmt = prepare(sql) as BetterSqlite3.Statement & { [TIMED]?: true };
    if (stmt[TIMED]) return stmt;
    stmt[TIMED] = true;
    for (const method of ['run', 'all', 'get'] as const) {
      const run = stmt[method] as (...args: unknown[]) => unknown;
      (stmt as unknown as Record<string, unknown>)[method] = function timed(...args: unknown[]) {
        const took = watch.took;
        if (!took) return run.apply(stmt, args);
        const at = performance.now();
        try {
          return run.apply(stmt, args);
        } finally {
          took(sql, performance.now() - at);
        }
      };
    }
    return stmt;
  }) as typeof conn.prepare;
}

/** How many prepared statements a connection keeps (least recently used go first). */
const KEPT_STATEMENTS = 256;

/**
 * Keeps the connection's prepared statements by their SQL text. knex's better-sqlite3
 * dialect prepares every query anew (`_query` calls `prepare` each time): under the
 * intake's flood that was a fifth of the main thread's database time, for SQL it had
 * prepared a moment before (the worker's claims, the pages' and the monitor's reads). knex
 * only ever runs a statement to its end (`all` or `run`), one at a time on this
 * one-connection pool, so a kept statement is never busy when it is taken again; SQLite
 * prepares it again by itself if the schema changed (test/integration/sqlite-statements).
 * Figures: test/bench/README.md#statements.
 */
function keepStatements(conn: BetterSqlite3.Database): void {
  const prepare = conn.prepare.bind(conn);
  const kept = new Map<string, BetterSqlite3.Statement>();
  conn.prepare = ((sql: string) => {
    let stmt = kept.get(sql);
    if (stmt !== undefined) {
      kept.delete(sql);
      // knex sets it on the statement for a query that asks (`.options({safeIntegers})`);
      // the next one with the same text must not inherit it.
      stmt.safeIntegers(false);
    } else {
      stmt = prepare(sql);
      if (kept.size >= KEPT_STATEMENTS) kept.delete(kept.keys().next().value as string);
    }
    kept.set(sql, stmt);
    return stmt;
  }) as typeof conn.prepare;
}

export function isSqlite(db: Db): boolean {
  const client = (db.client as { config?: { client?: unknown } }).config?.client;
  return client === 'better-sqlite3' || client === 'sqlite3';
}

/**
 * `column = value` as a term SQLite's planner will not answer with an index (unary +, see
 * https://sqlite.org/optoverview.html#disqualifying_where_clause_terms_using_unary_); a plain
 * comparison elsewhere. For `id IN (…) AND status = ?`: without statistics SQLite took the
 * index on `status` and read every pending job (32 ms per claim under a backlog) instead of
 * looking up the few ids.
 */
export function unindexedEquals(db: Knex, column: string, value: Knex.Value): Knex.Raw {
  return db.raw(isSqlite(db) ? '+?? = ?' : '?? = ?', [column, value]);
}

export function isPg(db: Db): boolean {
  const client = (db.client as { config?: { client?: unknown } }).config?.client;
  return client === 'pg' || client === 'postgres' || client === 'postgresql';
}
