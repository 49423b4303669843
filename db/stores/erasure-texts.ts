import type { Knex } from 'knex';
import type { TableCounts } from './retention.js';

/**
 * Texts kept outside the erased rows that may quote an erased record: a destination's last
 * error (an `http` step's 5xx answer is quoted in it, e.g. a title the host refused), the
 * copy of it an alert condition keeps, and the failed-events digest, whose lines name events
 * with their last errors. The rows themselves stay (breaker state, alert state, the alert
 * job's history); only the quoted text goes.
 */

/**
 * Keys whose last error may quote the portal's steps: its own destinations (its `http` hosts,
 * `http:<host>#<id>`, its own use of a shared channel, `sms:<host>#<id>`, and its REST
 * endpoint) and the operator's shared channels (Telegram, SMTP, SMS: every key that is no
 * portal's own, as server/queue/destinations.ts isPortalDestination tells them), whose last
 * error may come from any portal's step.
 */
function quotingDestinations(q: Knex.QueryBuilder, portalId: number, domain: string | null) {
  return q.where((w) => {
    w.where('key', 'like', `%#${portalId}`);
    if (domain) w.orWhere('key', `rest:${domain}`);
    w.orWhere((shared) => shared.whereNot('key', 'like', '%#%').whereNot('key', 'like', 'rest:%'));
  });
}

type Destination = { lastError?: unknown };

/** `details` of a destination alert without the last errors it copied. */
function withoutLastErrors(raw: string | null): string | null {
  if (raw === null) return null;
  let details: Destination & { list?: Destination[] };
  try {
    details = JSON.parse(raw) as Destination & { list?: Destination[] };
  } catch {
    return null;
  }
  if (!details || typeof details !== 'object') return raw;
  const list: Destination[] = Array.isArray(details.list) ? details.list : [details];
  let changed = false;
  for (const d of list) {
    if (d && typeof d === 'object' && d.lastError) {
      d.lastError = null;
      changed = true;
    }
  }
  return changed ? JSON.stringify(details) : raw;
}

/**
 * Forgets the last errors of the portal's own destinations, those of the shared channels
 * (they may quote this portal's steps; the operator loses only their text, not the breaker
 * state), and the copies the destination alerts keep: the portal's
 * (`destinations:<member_id>`) and the operator's (`destination:<key>`, no member_id).
 */
export async function forgetDestinationErrors(
  db: Knex,
  portal: { id: number; member_id: string },
): Promise<TableCounts> {
  const row = (await db('portals').where('id', portal.id).first('domain')) as
    { domain: string | null } | undefined;
  const destinations = await quotingDestinations(db('destinations'), portal.id, row?.domain ?? null)
    .whereNotNull('last_error')
    .update({ last_error: null });
  let alertState = 0;
  // The portal's destination alert, and the operator's alerts on the shared channels.
  const states = (await db('alert_state')
    .where({ kind: 'destination' })
    .where((w) => w.where('member_id', portal.member_id).orWhereNull('member_id'))
    .select('key', 'details')) as Array<{ key: string; details: string | null }>;
  for (const s of states) {
    const details = withoutLastErrors(s.details);
    if (details === s.details) continue;
    alertState += await db('alert_state').where('key', s.key).update({ details });
  }
  // The alerts already written from them: queued ones would still send the quote, sent ones
  // keep it as the job's history (an operator walk found both after `erase --entity`).
  const jobs = await rewriteAlertTexts(
    db,
    (q) => q.where((w) => w.where('portal_id', portal.id).orWhereNull('portal_id')),
    (line) =>
      line.replace(LAST_ERROR, (_, word: string, stop: string) =>
        word === 'last' ? ` (last error erased)${stop}` : ` (последняя ошибка удалена)${stop}`,
      ),
  );
  return { destinations, alert_state: alertState, jobs };
}

/**
 * A destination alert's quote of the last error (server/alerts/messages.ts and
 * messages-ru.ts `lastOf`): ` (last: …)` at the end of its line, before a full stop or none;
 * the quote has its white space made single, so it never spans lines.
 */
const LAST_ERROR = / \((last|последняя): .*\)(\.?)$/;

/**
 * Rewrites, line by line, the texts of the alert jobs `scope` selects, a page at a time;
 * returns how many jobs changed.
 */
async function rewriteAlertTexts(
  db: Knex,
  scope: (q: Knex.QueryBuilder) => Knex.QueryBuilder,
  rewrite: (line: string) => string,
  page = 500,
): Promise<number> {
  let jobs = 0;
  for (let after = 0; ;) {
    const rows = (await scope(db('jobs').where({ type: 'alert' }))
      .where('id', '>', after)
      .orderBy('id')
      .limit(page)
      .select('id', 'payload')) as Array<{ id: number | string; payload: string | null }>;
    if (rows.length === 0) break;
    after = Number(rows[rows.length - 1]!.id);
    for (const r of rows) {
      let payload: { text?: unknown };
      try {
        payload = JSON.parse(r.payload ?? '') as { text?: unknown };
      } catch {
        continue;
      }
      if (typeof payload.text !== 'string') continue;
      const text = payload.text.split('\n').map(rewrite).join('\n');
      if (text === payload.text) continue;
      jobs += await db('jobs')
        .where('id', r.id)
        .update({ payload: JSON.stringify({ ...payload, text }) });
    }
  }
  return jobs;
}

/** A digest line naming an event: `  #<id> <EVENT> …: <last error>` (server/alerts/messages.ts). */
const EVENT_LINE = /^(\s*#(\d+) )(.*)$/;

/**
 * The portal's alert texts lose the lines that name erased events (the failed-events digest
 * quotes each event's last error); the line keeps only the event id. `eventIds`: the erased
 * events. Reads the portal's alert jobs a page at a time.
 */
export async function redactAlertTexts(
  db: Knex,
  portalId: number,
  eventIds: ReadonlySet<number>,
): Promise<TableCounts> {
  if (eventIds.size === 0) return { jobs: 0 };
  const jobs = await rewriteAlertTexts(
    db,
    (q) => q.where('portal_id', portalId),
    (line) => {
      const m = EVENT_LINE.exec(line);
      return m && eventIds.has(Number(m[2])) ? `${m[1]}(erased)` : line;
    },
  );
  return { jobs };
}
