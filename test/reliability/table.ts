import type { Row } from './types.js';

const COLUMNS = ['area', 'check', 'measured', 'expected', 'result'] as const;

/** Rows as a Markdown table with aligned columns (it reads the same in a terminal). */
export function formatTable(rows: readonly Row[]): string {
  const cells = rows.map((r) => [
    r.area,
    r.check,
    r.measured,
    r.expected,
    r.pass ? 'pass' : 'FAIL',
  ]);
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]) =>
    `| ${values.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line(COLUMNS),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...cells.map(line),
  ].join('\n');
}
