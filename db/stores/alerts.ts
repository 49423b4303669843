import type { Knex } from 'knex';
import { getSetting } from './settings.js';

/** Alert kinds (server/alerts/). */
export type AlertKind = 'backlog' | 'failed' | 'reauth' | 'drift' | 'sla' | 'destination';

/** A row of `alert_state`: one per alert condition. */
export interface AlertStateRow {
  key: string;
  kind: AlertKind;
  member_id: string | null;
  state: 'ok' | 'firing';
  pending_since: number | null;
  fired_at: number | null;
  last_sent_at: number | null;
  cursor: number | null;
  details: string | null;
  version: number;
  updated_at: number;
}

/**
 * Settings keys (scope = the portal's member_id) of a portal's own alert channels, set in the
 * UI; without them TELEGRAM_CHAT_ID and ALERT_EMAIL_TO apply.
 */
export const ALERT_SETTINGS = {
  telegramChatId: 'alerts.telegramChatId',
  email: 'alerts.email',
} as const;

export interface PortalAlertChannels {
  telegramChatId: string | undefined;
  /** One address or several, comma separated. */
  email: string | undefined;
}

/** The portal's own alert channels (empty strings count as unset). */
export async function getPortalAlertChannels(
  db: Knex,
  memberId: string,
): Promise<PortalAlertChannels> {
  return portalAlertChannelsOf({
    telegramChatId: await getSetting<unknown>(db, memberId, ALERT_SETTINGS.telegramChatId),
    email: await getSetting<unknown>(db, memberId, ALERT_SETTINGS.email),
  });
}

/** A portal's own alert channels from its stored values (read in bulk, say). */
export function portalAlertChannelsOf(values: {
  telegramChatId: unknown;
  email: unknown;
}): PortalAlertChannels {
  const text = (v: unknown) =>
    v === undefined || v === null || String(v).trim() === '' ? undefined : String(v).trim();
  return { telegramChatId: text(values.telegramChatId), email: text(values.email) };
}

/**
 * Where a portal's `telegram` step without `chatId` goes: the portal's own alert chat, or
 * null (never the operator's TELEGRAM_CHAT_ID: server/actions/types.ts `telegramChat`).
 */
export async function portalStepChat(db: Knex, memberId: string): Promise<string | null> {
  return (await getPortalAlertChannels(db, memberId)).telegramChatId ?? null;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function normalise(r: Record<string, unknown>): AlertStateRow {
  return {
    ...(r as unknown as AlertStateRow),
    pending_since: num(r.pending_since),
    fired_at: num(r.fired_at),
    last_sent_at: num(r.last_sent_at),
    cursor: num(r.cursor),
    version: Number(r.version),
    updated_at: Number(r.updated_at),
  };
}

export async function getAlertState(db: Knex, key: string): Promise<AlertStateRow | undefined> {
  const r = (await db('alert_state').where({ key }).first()) as Record<string, unknown> | undefined;
  return r ? normalise(r) : undefined;
}

/** Every condition's state of these portals (the alert_state_member index). */
export async function alertStatesOfPortals(
  db: Knex,
  memberIds: readonly string[],
): Promise<AlertStateRow[]> {
  if (memberIds.length === 0) return [];
  const rows = (await db('alert_state').whereIn('member_id', memberIds)) as Record<
    string,
    unknown
  >[];
  return rows.map(normalise);
}

/**
 * The firing conditions of one portal (`memberId`) or of one kind, through the indexes of
 * db/migrations/0022-alert-state-lookups.ts: never a read of every portal's states.
 */
export async function firingAlertStates(
  db: Knex,
  by: { memberId: string } | { kind: AlertKind },
): Promise<AlertStateRow[]> {
  const q = db('alert_state').where('state', 'firing').orderBy('key');
  if ('memberId' in by) q.where('member_id', by.memberId);
  else q.where('kind', by.kind);
  return ((await q) as Record<string, unknown>[]).map(normalise);
}

/**
 * Writes a condition's new state if nobody changed it since `prev` was read (optimistic lock
 * on `version`); false when another instance got there first, so only one of them alerts.
 */
export async function saveAlertState(
  db: Knex,
  prev: AlertStateRow | undefined,
  next: Omit<AlertStateRow, 'version'>,
): Promise<boolean> {
  if (!prev) {
    const inserted = (await db('alert_state')
      .insert({ ...next, version: 1 })
      .onConflict('key')
      .ignore()
      .returning('key')) as unknown[];
    return inserted.length > 0;
  }
  const { key, ...values } = next;
  const n = await db('alert_state')
    .where({ key, version: prev.version })
    .update({ ...values, version: prev.version + 1 });
  return n > 0;
}

/** Most rows one insertAlertStates statement writes. */
const INSERT_STATES_ROWS = 250;

/**
 * Stores new conditions' first states (version 1), 250 rows a statement; a key another
 * instance stored first keeps its row, as saveAlertState without `prev`. Returns the keys
 * stored. The first check after thousands of portals appeared (or after an SLA rule was put
 * in the default map) wrote them one statement and one transaction each.
 */
export async function insertAlertStates(
  db: Knex,
  rows: ReadonlyArray<Omit<AlertStateRow, 'version'>>,
): Promise<Set<string>> {
  const stored = new Set<string>();
  for (let i = 0; i < rows.length; i += INSERT_STATES_ROWS) {
    const out = (await db('alert_state')
      .insert(rows.slice(i, i + INSERT_STATES_ROWS).map((r) => ({ ...r, version: 1 })))
      .onConflict('key')
      .ignore()
      .returning('key')) as Array<{ key: string }>;
    for (const r of out) stored.add(r.key);
  }
  return stored;
}

/** The columns updateAlertStates sets, in its VALUES order after key and version. */
const STATE_COLUMNS = [
  ['kind', 'varchar'],
  ['member_id', 'varchar'],
  ['state', 'varchar'],
  ['pending_since', 'bigint'],
  ['fired_at', 'bigint'],
  ['last_sent_at', 'bigint'],
  ['cursor', 'bigint'],
  ['details', 'text'],
  ['updated_at', 'bigint'],
] as const;

/**
 * saveAlertState of many changed states, 250 a statement: each written only if its version
 * is still `prev`'s (the optimistic lock), the others left to the instance that moved them.
 * Returns the keys written. A check that sends thousands of reminders or recovery notices
 * (an SLA backlog cleared on every portal) wrote them one statement and transaction each.
 */
export async function updateAlertStates(
  db: Knex,
  changes: ReadonlyArray<{ prev: AlertStateRow; next: Omit<AlertStateRow, 'version'> }>,
): Promise<Set<string>> {
  const stored = new Set<string>();
  // Casts: PostgreSQL would take the untyped parameters of VALUES for text.
  const row = `(cast(? as varchar), cast(? as integer), ${STATE_COLUMNS.map(
    ([, type]) => `cast(? as ${type})`,
  ).join(', ')})`;
  const names = ['k', 'v', ...STATE_COLUMNS.map(([c]) => `n_${c}`)];
  const select = names.map((n, i) => `column${i + 1} as ${n}`).join(', ');
  const set = STATE_COLUMNS.map(([c]) => `${c} = u.n_${c}`).join(', ');
  for (let i = 0; i < changes.length; i += INSERT_STATES_ROWS) {
    const chunk = changes.slice(i, i + INSERT_STATES_ROWS);
    const answer = (await db.raw(
      `update alert_state set ${set}, version = u.v + 1
         from (select ${select} from (values ${chunk.map(() => row).join(', ')}) as x) as u
        where alert_state.key = u.k and alert_state.version = u.v
        returning alert_state.key as key`,
      chunk.flatMap(({ prev, next }) => [
        next.key,
        prev.version,
        ...STATE_COLUMNS.map(([c]) => next[c]),
      ]),
    )) as unknown;
    const rows = (Array.isArray(answer) ? answer : (answer as { rows: unknown[] }).rows) as Array<{
      key: string;
    }>;
    for (const r of rows) stored.add(r.key);
  }
  return stored;
}

/**
 * Events received after `since` and still `received`, per portal (0 for none): with `since`
 * one settling time ago, those not yet due (EVENT_SETTLE_MS), which the backlog alert does
 * not count. A range of the (status, received_at) index: one settling time's deliveries.
 */
export async function settlingByPortal(db: Knex, since: number): Promise<Map<number, number>> {
  const rows = (await db('events')
    .where('status', 'received')
    .where('received_at', '>', since)
    .groupBy('portal_id')
    .select('portal_id')
    .count({ n: '*' })) as Array<{ portal_id: number | string | null; n: number | string }>;
  return new Map(rows.map((r) => [Number(r.portal_id ?? 0), Number(r.n)]));
}

export interface FailedEvent {
  id: number;
  event: string;
  entityType: string | null;
  entityId: string | null;
  lastError: string | null;
  processedAt: number;
  /** Rules the event matched (empty: it failed before the rules were evaluated). */
  rules: string[];
}

/**
 * Of these portals (at most a few hundred: two bound parameters each), those with an event
 * failed for good with `after < processed_at <= upTo`, each with its own `after`: one
 * statement of one index seek per portal (migration 0003's (portal_id, status, processed_at)
 * index), where failedEventsBetween of each idle portal was a query of its own.
 */
export async function portalsWithFailedBetween(
  db: Knex,
  ranges: ReadonlyArray<{ portalId: number; after: number }>,
  upTo: number,
): Promise<Set<number>> {
  if (ranges.length === 0) return new Set();
  // Casts: PostgreSQL would take the untyped parameters of VALUES for text.
  const values = ranges.map(() => '(cast(? as integer), cast(? as bigint))').join(', ');
  const answer = (await db.raw(
    `select v.column1 as p from (values ${values}) as v
      where exists (select 1 from events e where e.portal_id = v.column1
        and e.status = 'failed' and e.processed_at > v.column2 and e.processed_at <= ?)`,
    [...ranges.flatMap((r) => [r.portalId, r.after]), upTo],
  )) as unknown;
  const rows = (Array.isArray(answer) ? answer : (answer as { rows: unknown[] }).rows) as Array<{
    p: number | string;
  }>;
  return new Set(rows.map((r) => Number(r.p)));
}

/** A portal's events that failed for good with `after < processed_at <= upTo`, newest first. */
export async function failedEventsBetween(
  db: Knex,
  portalId: number,
  after: number,
  upTo: number,
  limit = 500,
): Promise<FailedEvent[]> {
  return (await failedEventsOf(db, [{ portalId, after }], upTo, limit)).get(portalId) ?? [];
}

/** Portals a statement of failedEventsOf reads: one compound term each (SQLite allows 500). */
const FAILED_PORTALS_CHUNK = 100;
/** Event ids a query of their rule matches binds. */
const MATCH_IDS_CHUNK = 1000;

/**
 * Per portal, its events failed for good with `after < processed_at <= upTo` (each its own
 * `after`), newest first (the later id first at the same time), at most `limit` each; a
 * portal with none is absent. The digests of a check's portals read them FAILED_PORTALS_CHUNK
 * portals a statement, each portal a limited seek of migration 0020's events_portal_processed
 * index as each digest's own query was, and their rules 1,000 events a query: each digest
 * was two queries, hundreds at a check. Ties in processed_at come in the order SQLite's
 * backward scan of that index gave them, now said so that PostgreSQL keeps it too.
 */
export async function failedEventsOf(
  db: Knex,
  ranges: ReadonlyArray<{ portalId: number; after: number }>,
  upTo: number,
  limit = 500,
): Promise<Map<number, FailedEvent[]>> {
  const rows: Array<Record<string, unknown>> = [];
  for (let i = 0; i < ranges.length; i += FAILED_PORTALS_CHUNK) {
    const chunk = ranges.slice(i, i + FAILED_PORTALS_CHUNK);
    // A term per portal, not wrapped: SQLite takes no parentheses around a compound's terms.
    const [first, ...rest] = chunk.map((r) =>
      db.select('*').from(
        db('events')
          .where({ portal_id: r.portalId, status: 'failed' })
          .where('processed_at', '>', r.after)
          .where('processed_at', '<=', upTo)
          .orderBy([
            { column: 'processed_at', order: 'desc' },
            { column: 'id', order: 'desc' },
          ])
          .limit(limit)
          .select(
            'id',
            'portal_id',
            'event',
            'entity_type',
            'entity_id',
            'last_error',
            'processed_at',
          )
          .as('t'),
      ),
    );
    rows.push(
      ...((await (rest.length ? first!.unionAll(rest) : first!)) as Array<Record<string, unknown>>),
    );
  }
  const ids = rows.map((r) => Number(r.id));
  const byEvent = new Map<number, string[]>();
  for (let i = 0; i < ids.length; i += MATCH_IDS_CHUNK) {
    const matches = (await db('rule_matches')
      .whereIn('event_id', ids.slice(i, i + MATCH_IDS_CHUNK))
      .whereNot('status', 'skipped')
      .orderBy('event_id')
      .orderBy('rule_name')
      .select('event_id', 'rule_name')) as Array<{ event_id: number | string; rule_name: string }>;
    for (const m of matches) {
      const list = byEvent.get(Number(m.event_id)) ?? [];
      list.push(m.rule_name);
      byEvent.set(Number(m.event_id), list);
    }
  }
  const byPortal = new Map<number, FailedEvent[]>();
  for (const r of rows) {
    const portalId = Number(r.portal_id);
    const list = byPortal.get(portalId) ?? [];
    list.push({
      id: Number(r.id),
      event: String(r.event),
      entityType: (r.entity_type as string | null) ?? null,
      entityId: (r.entity_id as string | null) ?? null,
      lastError: (r.last_error as string | null) ?? null,
      processedAt: Number(r.processed_at),
      rules: byEvent.get(Number(r.id)) ?? [],
    });
    byPortal.set(portalId, list);
  }
  // A compound statement's rows come term by term in practice, but only its terms are ordered.
  for (const list of byPortal.values())
    list.sort((a, b) => b.processedAt - a.processedAt || b.id - a.id);
  return byPortal;
}
