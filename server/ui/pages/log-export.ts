import type { Response } from 'express';
import type { Deps } from '../../deps.js';
import { logPage, type LogFilter } from '../../../db/stores/event-log.js';
import { uiContext } from '../context.js';
import { crmCardUrl } from '../crm-links.js';
import { maskForView } from '../mask-view.js';
import { isoInZone } from '../time.js';

/** Rows read per query: each page is one short indexed query, not one long scan. */
const CHUNK = 500;
/** The export stops here and says so in its last line. */
export const EXPORT_MAX_ROWS = 100_000;

const COLUMNS = [
  'id',
  'received_at',
  'event',
  'entity_type',
  'entity_id',
  'card_url',
  'status',
  'attempts',
  'processed_at',
  'source',
  'last_error',
];

/**
 * One CSV cell (RFC 4180 quoting). A cell starting with `=`, `+`, `-` or `@` gets a leading
 * `'` so a spreadsheet shows it as text instead of running it as a formula (OWASP "CSV
 * injection").
 */
export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * The filtered log as CSV, newest first, written page by page; times are ISO 8601 with the
 * user's offset. Event bodies are left out and
 * errors pass through the same masking as the pages, so no token or secret is exported.
 */
export async function exportLogCsv(deps: Deps, res: Response, filter: LogFilter): Promise<void> {
  const { portal, user } = uiContext(res);
  const iso = (ms: number | null) => isoInZone(ms, user.timeZone ?? 'UTC');
  res.type('text/csv; charset=utf-8');
  res.attachment(`b24hooks-events-${portal.domain.replace(/[^\w.-]/g, '_')}.csv`);
  res.write(`\ufeff${COLUMNS.join(',')}\r\n`);
  let beforeId: number | undefined;
  let written = 0;
  for (;;) {
    const page = await logPage(deps.db, { ...filter, beforeId }, CHUNK);
    const lines = page.rows.map((r) =>
      [
        r.id,
        iso(r.received_at),
        r.event,
        r.entity_type,
        r.entity_id,
        crmCardUrl(portal, r.entity_type, r.entity_id),
        r.status,
        r.attempts,
        iso(r.processed_at),
        r.source,
        maskForView(r.last_error ?? r.reject_reason ?? null),
      ]
        .map(csvCell)
        .join(','),
    );
    if (lines.length) res.write(`${lines.join('\r\n')}\r\n`);
    written += lines.length;
    beforeId = page.nextBeforeId;
    if (beforeId === undefined) break;
    if (written >= EXPORT_MAX_ROWS) {
      res.write(`# truncated at ${EXPORT_MAX_ROWS} rows; narrow the filter\r\n`);
      break;
    }
  }
  res.end();
}
