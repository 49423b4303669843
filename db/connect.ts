import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';

export type Db = Knex;

export type DbTarget =
  | { readonly client: 'sqlite'; readonly filename: string }
  | { readonly client: 'pg'; readonly connectionString: string };

export interface OpenOptions {
  /**
   * SQLite only: keep up to this many prepared statements per connection, by SQL text.
   * knex prepares every query afresh, which for a short insert costs as much as running it;
   * worth it on a connection that repeats a few statements (the intake writer).
   * @default 0 (off)
   */
  statementCache?: number;
}

interface SqliteConnection {
  pragma(s: string): unknown;
  prepare(sql: string): unknown;
}

/**
 * Reuses better-sqlite3 statements by SQL text. Safe with knex, which only ever calls
 * `run` or `all` (both finish before returning, so a statement is never in use twice) and
 * binds every parameter on each call; SQLite re-prepares a cached statement by itself
 * after a schema change.
 */
function cacheStatements(conn: SqliteConnection, max: number): void {
  const prepare = conn.prepare.bind(conn);
  const cache = new Map<string, unknown>();
  conn.prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      // Oldest first out: batch shapes that stopped recurring make room.
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(sql, statement);
    }
    return statement;
  };
}

/**
 * Opens the database. SQLite runs in WAL mode with `synchronous=FULL`, so a commit that
 * returned has reached the disk and survives a power loss; foreign keys on; a busy timeout
 * so a second process (the CLI) waits instead of failing.
 */
export function openDb(target: DbTarget, opts: OpenOptions = {}): Db {
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
          conn.pragma('journal_mode = WAL');
          conn.pragma('synchronous = FULL');
          conn.pragma('foreign_keys = ON');
          conn.pragma('busy_timeout = 5000');
          if (opts.statementCache) cacheStatements(conn, opts.statementCache);
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
