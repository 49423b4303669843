import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { openDb } from '../../db/connect.js';
import { migrateToLatest } from '../../db/migrate.js';
import { upsertPortal } from '../../db/stores/portals.js';
import { createSecretBox } from '../../server/lib/crypto.js';

/**
 * Prepares a DATA_DIR for a spawned server: secrets in env form and one installed portal,
 * written through the real migrations and stores.
 */
export async function seedDataDir(dataDir: string) {
  const key = randomBytes(32).toString('hex');
  const env = {
    DATA_DIR: dataDir,
    TOKEN_ENCRYPTION_KEY: key,
    SESSION_SECRET: randomBytes(24).toString('hex'),
  };
  const db = openDb({ client: 'sqlite', filename: path.join(dataDir, 'b24hooks.sqlite') });
  await migrateToLatest(db);
  const box = createSecretBox(Buffer.from(key, 'hex'));
  const memberId = randomBytes(16).toString('hex');
  const applicationToken = randomBytes(16).toString('hex');
  const domain = 'crash.bitrix24.com';
  await upsertPortal(db, {
    member_id: memberId,
    domain,
    status: 'installed',
    application_token_digest: box.digest(applicationToken),
    updated_at: Date.now(),
  });
  await db.destroy();
  return { env, portal: { memberId, domain, applicationToken } };
}
