/** Where the CLI writes: stdout for results only, stderr for logs and reasons. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

/** Bad usage: exit code 2 with a one-line reason. */
export class UsageError extends Error {}

export function parseIsoTime(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(t)) {
    throw new UsageError(
      `${name} must be an ISO date or time such as 2026-11-27T10:00:00Z, got "${value}"`,
    );
  }
  return t;
}

export function parseLimit(value: string | undefined, def: number): number {
  if (value === undefined) return def;
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new UsageError(`--limit must be a positive whole number, got "${value}"`);
  }
  return Number(value);
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
