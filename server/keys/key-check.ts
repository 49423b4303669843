import type { Knex } from 'knex';
import { getKeyCheck, insertKeyCheck } from '../../db/stores/key-check.js';
import { sampleEncryptedValue } from '../../db/stores/encrypted-columns.js';
import { createSecretBox, deriveDigestKey, type SecretBox } from '../lib/crypto.js';
import { AppError } from '../lib/errors.js';

const MARK = 'b24hooks key check v1';

/** What the key check holds, encrypted with TOKEN_ENCRYPTION_KEY. */
interface KeyCheckValue {
  check: typeof MARK;
  /** Hex key of the keyed digests (application tokens); it survives key rotation. */
  digestKey: string;
}

/** The configured key does not decrypt what the database holds: the start must stop. */
export class KeyMismatchError extends AppError {
  constructor(cause?: unknown, why?: string) {
    super(
      'CONFIG',
      'TOKEN_ENCRYPTION_KEY cannot decrypt the tokens stored in this database (key check failed): ' +
        (why ?? 'the key was changed, or DATA_DIR/secrets.json was replaced or lost.') +
        ' ' +
        'Start with the key the data was written with (the environment used before, or a backup of secrets.json); ' +
        'to move to a new key, stop every instance, keep the old key configured and run `npx b24hooks rotate-key` ' +
        '(see server/README.md, Operations: keys).',
      { status: 500, cause },
    );
  }
}

/** Seals the key check value for `key`. */
export function sealKeyCheck(key: Buffer, digestKey: Buffer): string {
  const value: KeyCheckValue = { check: MARK, digestKey: digestKey.toString('hex') };
  return createSecretBox(key, digestKey).encrypt(JSON.stringify(value));
}

/** The digest key inside a key check, or KeyMismatchError when `key` does not open it. */
export function openKeyCheck(key: Buffer, valueEnc: string): Buffer {
  let value: Partial<KeyCheckValue>;
  try {
    value = JSON.parse(createSecretBox(key).decrypt(valueEnc)) as Partial<KeyCheckValue>;
  } catch (e) {
    throw new KeyMismatchError(e);
  }
  if (value.check !== MARK || typeof value.digestKey !== 'string') throw new KeyMismatchError();
  return Buffer.from(value.digestKey, 'hex');
}

/**
 * The secret box for this database, after proving that `key` is the one its secrets were
 * written with. The first start writes the key check; a database from before the key check
 * is tested on one stored encrypted value first. Any mismatch throws KeyMismatchError, so
 * the server refuses to start instead of answering 401 to every delivery.
 */
export async function openSecretBox(db: Knex, key: Buffer, now: number): Promise<SecretBox> {
  let row = await getKeyCheck(db);
  if (!row) {
    const sample = await sampleEncryptedValue(db);
    if (sample !== undefined) {
      try {
        createSecretBox(key).decrypt(sample);
      } catch (e) {
        throw new KeyMismatchError(e);
      }
    }
    // Databases written before the key check used the digest key derived from this key.
    await insertKeyCheck(db, sealKeyCheck(key, deriveDigestKey(key)), now);
    row = await getKeyCheck(db);
    if (!row) throw new Error('the key check row was not written');
  }
  return createSecretBox(key, openKeyCheck(key, row.value_enc));
}
