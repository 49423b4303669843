import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { decodeKey, type Config } from '../config.js';
import type { SecretBox } from '../lib/crypto.js';
import { replaceDurably, SECRETS_FILE, stagedSecretsFile } from '../secrets.js';
import { openSecretBox } from './key-check.js';

/**
 * Finishes a `rotate-key` that stopped between its database commit and the rename of its
 * staged secrets (server/cli/rotate-key.ts): the database then holds every secret under
 * the new key while secrets.json still has the old one, and the start would refuse with
 * KeyMismatchError. Called only after the configured key failed the key check, and only
 * when that key came from secrets.json: if the staged key opens the key check, the staged
 * file takes secrets.json's place and its key is returned with the box. Otherwise
 * (nothing staged, or a staged key the database never committed to) undefined, and the
 * mismatch stands.
 */
export async function finishStagedRotation(
  db: Knex,
  config: Pick<Config, 'dataDir' | 'tokenKeyFromFile'>,
  now: number,
): Promise<{ key: Buffer; box: SecretBox } | undefined> {
  if (!config.tokenKeyFromFile) return undefined;
  const staged = stagedSecretsFile(config.dataDir);
  let key: Buffer | undefined;
  try {
    const parsed = JSON.parse(fs.readFileSync(staged, 'utf8')) as { tokenEncryptionKey?: unknown };
    key =
      typeof parsed.tokenEncryptionKey === 'string'
        ? decodeKey(parsed.tokenEncryptionKey)
        : undefined;
  } catch {
    return undefined;
  }
  if (!key) return undefined;
  let box: SecretBox;
  try {
    box = await openSecretBox(db, key, now);
  } catch {
    return undefined;
  }
  replaceDurably(staged, path.join(config.dataDir, SECRETS_FILE));
  return { key, box };
}
