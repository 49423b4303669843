import type { Knex } from 'knex';
import {
  ENCRYPTED_COLUMNS,
  encryptedRows,
  updateEncryptedRow,
  type EncryptedColumns,
} from '../../db/stores/encrypted-columns.js';
import { getKeyCheck, replaceKeyCheck } from '../../db/stores/key-check.js';
import { createSecretBox } from '../lib/crypto.js';
import { openKeyCheck, sealKeyCheck } from './key-check.js';

const BATCH = 500;

const isSealed = (v: unknown): v is string => typeof v === 'string' && v.startsWith('v1.');
/**
 * Inside a JSON document (a rule map, a setting), plain text may start with `v1.` too (a
 * body's `"api": "v1.2"`, an alert address): only the sealed form itself counts there,
 * `v1.` and the base64url of at least IV and tag (28 bytes).
 */
const SEALED_FORM = /^v1\.[A-Za-z0-9_-]{38,}$/;
const isSealedInside = (v: unknown): v is string => typeof v === 'string' && SEALED_FORM.test(v);

/**
 * A column value with every sealed (`v1.`) value in it re-sealed: the value itself, or the
 * sealed strings anywhere inside a JSON document (secrets kept inside a JSON column).
 */
export function recrypt(
  value: string,
  reseal: (v: string) => string,
): { value: string; count: number } {
  if (isSealed(value)) return { value: reseal(value), count: 1 };
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    return { value, count: 0 };
  }
  let count = 0;
  const walk = (x: unknown): unknown => {
    if (isSealedInside(x)) {
      count += 1;
      return reseal(x);
    }
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') {
      return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, walk(v)]));
    }
    return x;
  };
  const out = walk(doc);
  return count === 0 ? { value, count } : { value: JSON.stringify(out), count };
}

export interface RotationResult {
  /** Values re-encrypted, by `table.column`. */
  readonly columns: Record<string, number>;
  readonly total: number;
}

/**
 * Re-encrypts every value of ENCRYPTED_COLUMNS from `oldKey` to `newKey`, and the key check
 * with them, in one transaction: either all of it moves to the new key or nothing does. The
 * digest key stays the same (it travels inside the key check), so stored application-token
 * digests stay valid. A value the old key cannot decrypt stops the rotation (rolled back).
 */
export async function rotateKey(
  db: Knex,
  oldKey: Buffer,
  newKey: Buffer,
  now: number,
  columns: readonly EncryptedColumns[] = ENCRYPTED_COLUMNS,
): Promise<RotationResult> {
  return db.transaction(async (trx) => {
    const check = await getKeyCheck(trx);
    if (!check) throw new Error('the database has no key check yet: start the server once first');
    const digestKey = openKeyCheck(oldKey, check.value_enc);
    const from = createSecretBox(oldKey, digestKey);
    const to = createSecretBox(newKey, digestKey);
    const counts: Record<string, number> = {};
    let total = 0;
    for (const spec of columns) {
      for (const c of spec.columns) counts[`${spec.table}.${c}`] = 0;
      let after: unknown[] | undefined;
      for (;;) {
        const rows = await encryptedRows(trx, spec, after, BATCH);
        for (const row of rows) {
          const values: Record<string, string> = {};
          for (const c of spec.columns) {
            const v = row[c];
            if (typeof v !== 'string') continue;
            let next: { value: string; count: number };
            try {
              next = recrypt(v, (x) => to.encrypt(from.decrypt(x)));
            } catch (e) {
              throw new Error(
                `${spec.table}.${c} of ${spec.key.join(', ')} ${row.__key.join(', ')} does not decrypt with the current key; nothing was changed`,
                { cause: e },
              );
            }
            if (next.count === 0) continue;
            values[c] = next.value;
            counts[`${spec.table}.${c}`]! += next.count;
            total += next.count;
          }
          if (Object.keys(values).length > 0)
            await updateEncryptedRow(trx, spec, row.__key, values);
        }
        if (rows.length < BATCH) break;
        after = rows[rows.length - 1]!.__key;
      }
    }
    await replaceKeyCheck(trx, sealKeyCheck(newKey, digestKey), now);
    return { columns: counts, total };
  });
}
