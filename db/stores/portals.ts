import type { Knex } from 'knex';

export type PortalStatus = 'installed' | 'needs_reauth' | 'uninstalled';
/** Why an installed portal's processing waits (migration 0011); null when it does not. */
export type PauseReason = 'invalid_client' | 'payment_required';
export type AuthMode = 'oauth' | 'webhook';

/** A row of `portals` (tokens still encrypted; see server/bitrix/portal-auth.ts). */
export interface PortalRow {
  id: number;
  member_id: string;
  domain: string;
  client_endpoint: string | null;
  server_endpoint: string | null;
  scope: string | null;
  plan: string | null;
  status: PortalStatus;
  auth_mode: AuthMode;
  access_token_enc: string | null;
  refresh_token_enc: string | null;
  token_expires_at: number | null;
  application_token_digest: string | null;
  webhook_url_enc: string | null;
  installed_by_user_id: number | null;
  app_version: string | null;
  events_bound: string | null;
  installed_at: number | null;
  /** When the OAuth server confirmed the install (null: taken during an outage, unconfirmed). */
  install_confirmed_at: number | null;
  uninstalled_at: number | null;
  updated_at: number;
  pause_reason: PauseReason | null;
  paused_at: number | null;
  /** The refresh lease (migration 0011); null when nobody refreshes. */
  refresh_lease_holder?: string | null;
  /** The language Bitrix24 named at install (`ru`, `en`, `de`, …); alerts use it. */
  lang?: string | null;
  /** The offline net's schedule (migration 0030, db/stores/offline-schedule.ts). */
  offline_due_at?: number;
  offline_interval_ms?: number | null;
  offline_lease_until?: number | null;
  /** Since when a payment lapse may have sent nothing (migration 0042); null: none open. */
  lapse_since?: number | null;
}

export type PortalInsert = Partial<Omit<PortalRow, 'id'>> &
  Pick<PortalRow, 'member_id' | 'domain' | 'updated_at'>;

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** A `portals` row as read (PostgreSQL answers bigints as strings) in the shape of PortalRow. */
export function normalise(row: Record<string, unknown> | undefined): PortalRow | undefined {
  if (!row) return undefined;
  return {
    ...(row as unknown as PortalRow),
    id: Number(row.id),
    token_expires_at: num(row.token_expires_at),
    installed_at: num(row.installed_at),
    install_confirmed_at: num(row.install_confirmed_at),
    paused_at: num(row.paused_at),
    pause_reason: (row.pause_reason as PauseReason | null | undefined) ?? null,
    uninstalled_at: num(row.uninstalled_at),
    updated_at: Number(row.updated_at),
    ...(row.lapse_since === undefined ? {} : { lapse_since: num(row.lapse_since) }),
    ...(row.offline_due_at === undefined
      ? {}
      : {
          offline_due_at: Number(row.offline_due_at),
          offline_interval_ms: num(row.offline_interval_ms),
          offline_lease_until: num(row.offline_lease_until),
        }),
  };
}

export async function findPortalByMemberId(
  db: Knex,
  memberId: string,
): Promise<PortalRow | undefined> {
  return normalise(await db('portals').where({ member_id: memberId }).first());
}

export async function findPortalById(db: Knex, id: number): Promise<PortalRow | undefined> {
  return normalise(await db('portals').where({ id }).first());
}

export async function listPortals(db: Knex): Promise<PortalRow[]> {
  const rows = await db('portals').orderBy('id');
  return rows.map((r: Record<string, unknown>) => normalise(r) as PortalRow);
}

/** Every portal's id and member_id, and nothing else (no tokens to read and copy). */
export async function listPortalIds(db: Knex): Promise<Array<{ id: number; memberId: string }>> {
  const rows = (await db('portals').orderBy('id').select('id', 'member_id')) as Array<{
    id: number | string;
    member_id: string;
  }>;
  return rows.map((r) => ({ id: Number(r.id), memberId: r.member_id }));
}

/** Inserts or updates the portal keyed by member_id; returns the stored row. */
export async function upsertPortal(db: Knex, values: PortalInsert): Promise<PortalRow> {
  const existing = await db('portals').where({ member_id: values.member_id }).first('id');
  if (existing) {
    await db('portals').where({ id: existing.id }).update(values);
  } else {
    await db('portals').insert(values);
  }
  return (await findPortalByMemberId(db, values.member_id)) as PortalRow;
}

export async function updatePortal(
  db: Knex,
  id: number,
  values: Partial<Omit<PortalRow, 'id' | 'member_id'>>,
): Promise<void> {
  await db('portals').where({ id }).update(values);
}

/**
 * An uninstall: the status, and none of the portal's credentials or bindings. Bitrix24
 * withdraws the app's REST access with it, so the credentials could only leak, never serve;
 * a reinstall brings new ones. Its rules and log stay.
 */
export async function markPortalUninstalled(db: Knex, id: number, now: number): Promise<void> {
  await updatePortal(db, id, {
    status: 'uninstalled',
    uninstalled_at: now,
    events_bound: null,
    access_token_enc: null,
    refresh_token_enc: null,
    token_expires_at: null,
    application_token_digest: null,
    webhook_url_enc: null,
    // A pause (invalid_client, PAYMENT_REQUIRED) was about the credentials just dropped, and
    // a payment lapse is not swept into a later install (db/stores/lapses.ts).
    pause_reason: null,
    paused_at: null,
    lapse_since: null,
    updated_at: now,
  });
}

export function portalEvents(row: PortalRow): string[] {
  if (!row.events_bound) return [];
  try {
    const parsed = JSON.parse(row.events_bound) as unknown;
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return [];
  }
}

/**
 * Takes the portal's refresh lease for `holder` until `until` (wall-clock ms) when nobody
 * holds it, or its holder's time ran out: one conditional UPDATE, atomic on SQLite and
 * PostgreSQL alike, so two processes on one database never refresh a portal together.
 */
export async function acquireRefreshLease(
  db: Knex,
  portalId: number,
  holder: string,
  nowMs: number,
  until: number,
): Promise<boolean> {
  const n = await db('portals')
    .where({ id: portalId })
    .andWhere((q) =>
      q
        .whereNull('refresh_lease_until')
        .orWhere('refresh_lease_until', '<', nowMs)
        .orWhere('refresh_lease_holder', holder),
    )
    .update({ refresh_lease_holder: holder, refresh_lease_until: until });
  return Number(n) === 1;
}

export async function releaseRefreshLease(db: Knex, portalId: number, holder: string) {
  await db('portals')
    .where({ id: portalId, refresh_lease_holder: holder })
    .update({ refresh_lease_holder: null, refresh_lease_until: null });
}
