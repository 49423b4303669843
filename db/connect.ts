import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import knexFactory, { type Knex } from 'knex';

export type Db = Knex;

export type DbTarget =
  | { readonly client: 'sqlite'; readonly filename: string }
  | { readonly client: 'pg'; readonly connectionString: string };

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
  conn.pragma('journal_mode = WAL');
  conn.pragma('synchronous = FULL');
  conn.pragma('foreign_keys = ON');
  conn.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
}

/**
 * A bare better-sqlite3 connection with the same settings, for code that runs a few fixed
 * statements synchronously and cannot afford knex's per-query cost (the intake writer).
 */
export function openSqliteConnection(filename: string): BetterSqlite3.Database {
  fs.mkdirSync(path.dirname(filename), { recursive: true });
  const conn = new BetterSqlite3(filename);
  applySqlitePragmas(conn);
  return conn;
}

/**
 * Opens the database. SQLite runs in WAL mode with `synchronous=FULL`, so a commit that
 * returned has reached the disk and survives a power loss; foreign keys on; a busy timeout
 * so a second process (the CLI) waits instead of failing. better-sqlite3 waits on the
 * calling thread, so the server's main connection uses a shorter one (`busyTimeoutMs`).
 */
export function openDb(target: DbTarget, opts: { busyTimeoutMs?: number } = {}): Db {
  if (target.client === 'pg') {
    return knexFactory({
      client: 'pg',
      connection: target.connectionString,
      pool: { min: 0, max: 10 },
    });
  }
  fs.mkdirSync(path.dirname(target.filename), { recursive: true });
  return knexFactory({
    client: 'better-sqlite3',
    connection: { filename: target.filename },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: 1,
      afterCreate(conn: SqliteConnection, done: (err: Error | null, c: unknown) => void) {
        try {
          applySqlitePragmas(conn, opts.busyTimeoutMs);
          done(null, conn);
        } catch (e) {
          done(e as Error, conn);
        }
      },
    },
  });
}

export function isSqlite(db: Db): boolean {
  const client = (db.client as { config?: { client?: unknown } }).config?.client;
  return client === 'better-sqlite3' || client === 'sqlite3';
}
