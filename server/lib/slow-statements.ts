import type { Logger } from './logger.js';
import { createLogBudget } from './log-budget.js';

/** A statement that takes this long is logged (SQLite: every request waited that long). */
export const SLOW_STATEMENT_MS = 100;
/** Slow-statement lines a minute; the rest are counted in the histogram only. */
const LINES_PER_MINUTE = 10;
/** How much of a slow statement's SQL a line quotes. */
const SQL_SHOWN = 300;

/**
 * What to do with each statement's time (`watchStatements` in db/connect.ts): every one goes
 * into `observe` (seconds; the `b24hooks_db_statement_seconds` histogram), and one that took
 * SLOW_STATEMENT_MS or more is logged with its SQL (string literals masked; values are bound
 * parameters and never appear), at most LINES_PER_MINUTE lines a minute. On SQLite the main
 * connection runs on the main thread: such a statement is the stall an operator sees in
 * `b24hooks_event_loop_delay_seconds`, and this line says which one it was.
 */
export function statementWatch(opts: {
  logger: Logger;
  observe: (seconds: number) => void;
  sqlite: boolean;
  now?: () => number;
  slowMs?: number;
}): (sql: string, ms: number) => void {
  const slowMs = opts.slowMs ?? SLOW_STATEMENT_MS;
  const mayLog = createLogBudget(
    opts.logger,
    opts.now ?? Date.now,
    LINES_PER_MINUTE,
    'slow SQL statement lines left out in the last minute (each is counted in b24hooks_db_statement_seconds)',
  );
  return (sql, ms) => {
    opts.observe(ms / 1000);
    if (ms < slowMs || !mayLog('slow_statement')) return;
    opts.logger.warn(
      { ms: Math.round(ms), sql: shownSql(sql) },
      opts.sqlite
        ? 'slow SQL statement: the main thread, and every request, waited for it'
        : 'slow SQL statement',
    );
  };
}

/** A statement's text for a log line: literals masked, whitespace folded, cut. */
export function shownSql(sql: string): string {
  const masked = sql
    .replace(/'(?:[^']|'')*'/g, "'?'")
    .replace(/\s+/g, ' ')
    .trim();
  return masked.length > SQL_SHOWN ? `${masked.slice(0, SQL_SHOWN)}…` : masked;
}
