import type { Response } from 'express';
import type { Deps } from '../../deps.js';
import { logPage, type LogFilter } from '../../../db/stores/event-log.js';
import { uiContext } from '../context.js';
import { crmCardUrl } from '../crm-links.js';
import { maskForView } from '../mask-view.js';
import { translateMessage } from '../i18n-messages.js';
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

/** Exports of one portal running at once on an instance; another is refused until one ends. */
export const EXPORTS_PER_PORTAL = 2;

const EXPORTS_BUSY = `${EXPORTS_PER_PORTAL} exports of this portal's log are running; try again when one of them ends.`;

/** Exports running, by portal id, per app (an instance's deps). */
const running = new WeakMap<Deps, Map<number, number>>();

/** A reader that takes nothing for this long is let go: its export ends and frees its slot. */
export const EXPORT_STALL_MS = 60_000;

/**
 * Writes a chunk and waits while the reader is behind (the socket's buffer full); false once
 * the reader is gone, or has taken nothing for `stallMs` (the connection is then closed).
 * Written without waiting, a reader that stops reading had the whole export (up to 100,000
 * rows) held in memory: ten such connections of one portal's user took 675 MB (a security
 * review's measurement); waited for without an end, two stalled readers would hold the
 * portal's two exports for good.
 */
export async function writeOrWait(
  res: Response,
  chunk: string,
  stallMs = EXPORT_STALL_MS,
): Promise<boolean> {
  if (res.destroyed) return false;
  if (res.write(chunk)) return true;
  const drained = await new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), stallMs);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
  if (!drained && !res.destroyed) res.destroy();
  return drained && !res.destroyed;
}

/**
 * The filtered log as CSV, newest first, written page by page as the reader takes it; times
 * are ISO 8601 with the user's offset. Event bodies are left out and errors pass through the
 * same masking as the pages, so no token or secret is exported. At most EXPORTS_PER_PORTAL
 * run at once for a portal (429 past it).
 */
export async function exportLogCsv(deps: Deps, res: Response, filter: LogFilter): Promise<void> {
  const { portal, user } = uiContext(res);
  const counts = running.get(deps) ?? new Map<number, number>();
  running.set(deps, counts);
  const now = counts.get(portal.id) ?? 0;
  if (now >= EXPORTS_PER_PORTAL) {
    res
      .status(429)
      .set('Retry-After', '30')
      .type('text/plain; charset=utf-8')
      .send(`${translateMessage(EXPORTS_BUSY, user.lang)}\n`);
    return;
  }
  counts.set(portal.id, now + 1);
  try {
    await writeCsv(deps, res, filter);
  } finally {
    const left = (counts.get(portal.id) ?? 1) - 1;
    if (left > 0) counts.set(portal.id, left);
    else counts.delete(portal.id);
  }
}

async function writeCsv(deps: Deps, res: Response, filter: LogFilter): Promise<void> {
  const { portal, user } = uiContext(res);
  const iso = (ms: number | null) => isoInZone(ms, user.timeZone ?? 'UTC');
  res.type('text/csv; charset=utf-8');
  res.attachment(`b24hooks-events-${portal.domain.replace(/[^\w.-]/g, '_')}.csv`);
  if (!(await writeOrWait(res, `\ufeff${COLUMNS.join(',')}\r\n`))) return;
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
    if (lines.length && !(await writeOrWait(res, `${lines.join('\r\n')}\r\n`))) return;
    written += lines.length;
    beforeId = page.nextBeforeId;
    if (beforeId === undefined) break;
    if (written >= EXPORT_MAX_ROWS) {
      if (
        !(await writeOrWait(res, `# truncated at ${EXPORT_MAX_ROWS} rows; narrow the filter\r\n`))
      ) {
        return;
      }
      break;
    }
  }
  res.end();
}
