/** Where the CLI writes: stdout for results only, stderr for logs and reasons. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

/** Bad usage: exit code 2 with a one-line reason. */
export class UsageError extends Error {}

/**
 * `YYYY-MM-DD`, optionally `THH:MM[:SS[.fff]]` and a zone (`Z`, `+03:00`); without a zone
 * the time is the machine's local time, as `Date.parse` reads it.
 */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * An ISO date or time as milliseconds. `Date.parse` alone rolled impossible dates over
 * (2026-11-31 read as 2026-12-01, hour 24 as the next day) and read trailing words
 * ("2026-12-05junk" as a June date), so a typo widened a replay without a word.
 */
export function parseIsoTime(
  name: string,
  value: string | undefined,
  /**
   * An upper bound (`--to`): a date alone means the end of that day, as the pages read it.
   * Read as its first instant, `--from 2026-12-07 --to 2026-12-07` was refused and
   * `--to 2026-12-07` left that day out, where the replay page counted the whole day.
   */
  opts: { endOfDay?: boolean } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const bad = () =>
    new UsageError(
      `${name} must be an ISO date or time such as 2026-11-27T10:00:00Z, got "${value}"`,
    );
  const m = ISO_TIME.exec(value);
  const t = Date.parse(value);
  if (!m || Number.isNaN(t)) throw bad();
  const [, y, mo, d, h = '0', mi = '0', sec = '0'] = m;
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (
    day.getUTCFullYear() !== Number(y) ||
    day.getUTCMonth() !== Number(mo) - 1 ||
    day.getUTCDate() !== Number(d) ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(sec) > 59
  ) {
    throw bad();
  }
  return opts.endOfDay && m[4] === undefined ? t + 86_400_000 : t;
}

/** `--limit N`: a positive whole number; no upper cap (past any table's size it means all). */
export function parseLimit(value: string | undefined, def: number): number {
  if (value === undefined) return def;
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new UsageError(`--limit must be a positive whole number, got "${value}"`);
  }
  return Math.min(Number(value), Number.MAX_SAFE_INTEGER);
}

/** Renders rows as an aligned text table. */
export function table(headers: string[], rows: Array<Array<string | number | null>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return (
    cells
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined ? null : new Date(ms).toISOString();
