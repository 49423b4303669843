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
      let after = 0;
      for (;;) {
        const rows = await encryptedRows(trx, spec, after, BATCH);
        for (const row of rows) {
          const values: Record<string, string> = {};
          for (const c of spec.columns) {
            const v = row[c];
            if (typeof v !== 'string') continue;
            let plain: string;
            try {
              plain = from.decrypt(v);
            } catch (e) {
              throw new Error(
                `${spec.table}.${c} of ${spec.key} ${row.__key} does not decrypt with the current key; nothing was changed`,
                { cause: e },
              );
            }
            values[c] = to.encrypt(plain);
            counts[`${spec.table}.${c}`]! += 1;
            total += 1;
          }
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
