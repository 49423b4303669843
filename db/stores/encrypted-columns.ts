import type { Knex } from 'knex';

/**
 * Every column that holds a value encrypted with TOKEN_ENCRYPTION_KEY (`SecretBox.encrypt`,
 * the `v1.` form). `npx b24hooks rotate-key` re-encrypts exactly these, and the start-up key
 * check reads a sample of them; test/integration/keys.test.ts fails when a table gains an
 * encrypted value that is not listed here. A new encrypted column is one more entry.
 */
export interface EncryptedColumns {
  readonly table: string;
  /** An integer primary key, to walk the table in batches. */
  readonly key: string;
  readonly columns: readonly string[];
}

export const ENCRYPTED_COLUMNS: readonly EncryptedColumns[] = [
  // OAuth tokens and the inbound-webhook URL (which carries its secret).
  {
    table: 'portals',
    key: 'id',
    columns: ['access_token_enc', 'refresh_token_enc', 'webhook_url_enc'],
  },
  // The tokens an ONAPPINSTALL delivery carried, kept until the install is confirmed.
  { table: 'events', key: 'id', columns: ['auth_enc'] },
];

export type EncryptedRow = Record<string, unknown> & { __key: number };

/** Up to `limit` rows with at least one encrypted value, after key `after`, by key. */
export async function encryptedRows(
  db: Knex,
  spec: EncryptedColumns,
  after: number,
  limit: number,
): Promise<EncryptedRow[]> {
  const rows = (await db(spec.table)
    .select({ __key: spec.key }, ...spec.columns)
    .where(spec.key, '>', after)
    .andWhere((q) => {
      for (const c of spec.columns) q.orWhereNotNull(c);
    })
    .orderBy(spec.key)
    .limit(limit)) as Array<Record<string, unknown>>;
  return rows.map((r) => ({ ...r, __key: Number(r.__key) }));
}

export async function updateEncryptedRow(
  db: Knex,
  spec: EncryptedColumns,
  key: number,
  values: Record<string, string>,
): Promise<void> {
  await db(spec.table).where(spec.key, key).update(values);
}

/** One stored encrypted value (any column), to test a key against before the key check exists. */
export async function sampleEncryptedValue(db: Knex): Promise<string | undefined> {
  for (const spec of ENCRYPTED_COLUMNS) {
    for (const c of spec.columns) {
      const r = (await db(spec.table).select(c).whereNotNull(c).first()) as
        Record<string, unknown> | undefined;
      if (r && typeof r[c] === 'string') return r[c];
    }
  }
  return undefined;
}
