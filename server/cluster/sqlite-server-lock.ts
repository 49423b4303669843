import BetterSqlite3 from 'better-sqlite3';
import { prepareSqliteFile } from '../../db/connect.js';
import { ConfigError } from '../lib/errors.js';

export interface ServerLock {
  release(): void;
}

/**
 * One server per SQLite database. Two (a systemd unit and a hand-started `npm start`, two
 * containers on one volume) both took deliveries, ran workers, retention and recovery on
 * one file, each waiting on the other's write lock: the intake answered 503 at times and
 * nothing said why. The CLI may still work beside a server; a second server may not.
 *
 * The lock is SQLite's own: an exclusive transaction, never ended, on a small file beside the
 * database (`<database>.server-lock`). The kernel drops it when the process goes, however it
 * goes (SIGKILL, a crash), so there is no stale pid file to clean after a crash, and pid 1
 * in two containers is no confusion.
 */
export function takeSqliteServerLock(databaseFile: string): ServerLock {
  if (databaseFile === ':memory:' || databaseFile === '') return { release() {} };
  const file = `${databaseFile}.server-lock`;
  prepareSqliteFile(file);
  const conn = new BetterSqlite3(file, { timeout: 0 });
  try {
    conn.exec('begin exclusive');
  } catch (e) {
    conn.close();
    if ((e as { code?: unknown }).code !== 'SQLITE_BUSY') throw e;
    throw new ConfigError([
      `another b24hooks server is running on ${databaseFile}: two would share its deliveries, worker and retention; stop it, or give this one its own DATA_DIR`,
    ]);
  }
  return {
    release() {
      conn.close();
    },
  };
}
