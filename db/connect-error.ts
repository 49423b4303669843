import type { DbTarget } from './connect.js';

type Coded = { code?: unknown; message?: unknown; name?: unknown };

/** Where a PostgreSQL URL points, without its password (user@host:port/database). */
function pgPlace(connectionString: string): string {
  try {
    const u = new URL(connectionString, 'postgres://base');
    const user = u.username ? `${decodeURIComponent(u.username)}@` : '';
    const db = u.pathname.replace(/^\//, '');
    return `${user}${u.hostname || 'localhost'}:${u.port || '5432'}${db ? `/${decodeURIComponent(db)}` : ''}`;
  } catch {
    return 'DATABASE_URL';
  }
}

/**
 * One line for the operator when the database cannot be reached or opened at start-up (the
 * server's and the CLI's), naming the place and what to check; undefined for any other error,
 * which keeps its stack. A password is never part of it: PostgreSQL's own messages name the
 * user only, and the place is rebuilt without it.
 */
export function describeConnectError(
  e: unknown,
  target: DbTarget,
  /** Whether an EACCES, EPERM, EROFS or ENOSPC is the database's (while it is opened). */
  opening = true,
): string | undefined {
  const { code, message, name } = (e ?? {}) as Coded;
  const text = typeof message === 'string' ? message.split('\n')[0]! : '';
  if (target.client === 'pg') {
    const at = `PostgreSQL at ${pgPlace(target.connectionString)} (DATABASE_URL)`;
    switch (code) {
      case 'ECONNREFUSED':
        return `${at} refused the connection: is PostgreSQL running and listening there?`;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return `${at}: the host name does not resolve`;
      case 'ETIMEDOUT':
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
        return `${at} cannot be reached (${code})`;
      case 'ECONNRESET':
        return `${at} closed the connection at once: is it PostgreSQL, and does it want SSL (?sslmode=require)?`;
      case '28P01':
      case '28000':
        return `${at}: ${text}; check the user and password in DATABASE_URL (or PGPASSWORD)`;
      case '3D000':
        return `${at}: ${text}; create it, or correct the database name in DATABASE_URL`;
      case '42501':
        return `${at}: ${text}; the user needs the right to create tables in that database`;
      case '53300':
        return `${at}: ${text}`;
    }
    if (name === 'KnexTimeoutError') return `${at} did not answer in time`;
    // node-postgres, asked for a password when DATABASE_URL and PGPASSWORD have none.
    if (/client password must be a string/.test(text)) {
      return `${at} asks for a password, and none is set: put it in DATABASE_URL (percent-encoded) or in PGPASSWORD`;
    }
    return undefined;
  }
  const file = target.filename;
  const fsError = ['EACCES', 'EPERM', 'EROFS', 'ENOSPC'].includes(String(code));
  if (fsError && !opening) return undefined;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
    case 'SQLITE_CANTOPEN':
      return `cannot open the SQLite file ${file} (${String(code)}): fix the owner or permissions of it and its folder, or point DATA_DIR elsewhere`;
    case 'SQLITE_NOTADB':
      return `${file} is not a SQLite database: is DATA_DIR (or DATABASE_URL) right?`;
    case 'SQLITE_CORRUPT':
      return `${file} is damaged (SQLITE_CORRUPT): restore it from a backup`;
    case 'SQLITE_FULL':
    case 'ENOSPC':
      return `no space left for ${file}: free some disk space`;
  }
  if (typeof code === 'string' && code.startsWith('SQLITE_READONLY'))
    return `${file} cannot be written (${code}): fix the owner or permissions of it, its folder and its -wal and -shm files`;
  return undefined;
}
