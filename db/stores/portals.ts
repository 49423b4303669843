import type { Knex } from 'knex';

export type PortalStatus = 'installed' | 'needs_reauth' | 'uninstalled';
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
  /** The language Bitrix24 named at install (`ru`, `en`, `de`, …); alerts use it. */
  lang?: string | null;
}

export type PortalInsert = Partial<Omit<PortalRow, 'id'>> &
  Pick<PortalRow, 'member_id' | 'domain' | 'updated_at'>;

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function normalise(row: Record<string, unknown> | undefined): PortalRow | undefined {
  if (!row) return undefined;
  return {
    ...(row as unknown as PortalRow),
    id: Number(row.id),
    token_expires_at: num(row.token_expires_at),
    installed_at: num(row.installed_at),
    install_confirmed_at: num(row.install_confirmed_at),
    uninstalled_at: num(row.uninstalled_at),
    updated_at: Number(row.updated_at),
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

export function portalEvents(row: PortalRow): string[] {
  if (!row.events_bound) return [];
  try {
    const parsed = JSON.parse(row.events_bound) as unknown;
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return [];
  }
}
