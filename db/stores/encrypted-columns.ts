import type { Knex } from 'knex';

/**
 * Every column that holds values encrypted with TOKEN_ENCRYPTION_KEY (`SecretBox.encrypt`,
 * the `v1.` form): either the value itself, or a JSON document with such values inside.
 * `npx b24hooks rotate-key` re-encrypts exactly these, and the start-up key check reads a
 * sample of them; test/integration/keys.test.ts fails when a table gains an encrypted value
 * that is not listed here. A new encrypted column is one more entry.
 */
export interface EncryptedColumns {
  readonly table: string;
  /** The primary key (one column or several), to walk the table in batches. */
  readonly key: readonly string[];
  readonly columns: readonly string[];
}

export const ENCRYPTED_COLUMNS: readonly EncryptedColumns[] = [
  // OAuth tokens and the inbound-webhook URL (which carries its secret).
  {
    table: 'portals',
    key: ['id'],
    columns: ['access_token_enc', 'refresh_token_enc', 'webhook_url_enc'],
  },
  // The tokens an ONAPPINSTALL delivery carried, kept until the install is confirmed.
  { table: 'events', key: ['id'], columns: ['auth_enc'] },
  // Rule maps: step credentials (an http step's secret, header values, a URL with a key) are
  // stored inside the map's JSON as {"$enc": "v1.…"} (server/rules/secret-fields.ts).
  { table: 'settings', key: ['scope', 'key'], columns: ['value'] },
  // A user's renewed token pair, left by the instance that renewed it for the others
  // (server/ui/user-renewal.ts).
  { table: 'user_token_renewals', key: ['spent'], columns: ['pair_enc'] },
  // An open session's proof of its user's rights: the frame's AUTH_ID and REFRESH_ID
  // (server/ui/admin-check.ts), inside the session's JSON. Left behind, a rotation turned
  // every open admin session into a reader's until the app was opened again.
  { table: 'sessions', key: ['sid'], columns: ['sess'] },
];

/** A row's columns, and its key values (in `spec.key` order) under `__key`. */
export type EncryptedRow = Record<string, unknown> & { __key: unknown[] };

/** Up to `limit` rows with at least one value in the columns, after key `after`, by key. */
export async function encryptedRows(
  db: Knex,
  spec: EncryptedColumns,
  after: unknown[] | undefined,
  limit: number,
): Promise<EncryptedRow[]> {
  const q = db(spec.table)
    .select(...new Set([...spec.key, ...spec.columns]))
    .where((w) => {
      for (const c of spec.columns) w.orWhereNotNull(c);
    })
    .orderBy(spec.key.map((column) => ({ column })))
    .limit(limit);
  if (after) {
    // Row-value comparison: SQLite (3.15+) and PostgreSQL both order tuples this way.
    const cols = spec.key.map(() => '??').join(', ');
    const vals = spec.key.map(() => '?').join(', ');
    q.andWhereRaw(`(${cols}) > (${vals})`, [...spec.key, ...after] as Knex.RawBinding[]);
  }
  const rows = (await q) as Array<Record<string, unknown>>;
  return rows.map((r) => ({ ...r, __key: spec.key.map((k) => r[k]) }));
}

export async function updateEncryptedRow(
  db: Knex,
  spec: EncryptedColumns,
  key: unknown[],
  values: Record<string, string>,
): Promise<void> {
  const where = Object.fromEntries(spec.key.map((k, i) => [k, key[i]]));
  await db(spec.table)
    .where(where as Record<string, string | number>)
    .update(values);
}

/** One stored sealed value (any column), to test a key before the key check exists. */
export async function sampleEncryptedValue(db: Knex): Promise<string | undefined> {
  for (const spec of ENCRYPTED_COLUMNS) {
    for (const c of spec.columns) {
      const r = (await db(spec.table).select(c).where(c, 'like', 'v1.%').first()) as
        Record<string, unknown> | undefined;
      if (r && typeof r[c] === 'string') return r[c];
    }
  }
  return undefined;
}
