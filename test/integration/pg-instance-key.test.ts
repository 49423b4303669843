import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { loadConfig } from '../../server/config.js';
import { sharedKeyWarnings } from '../../server/config/warnings.js';
import { createDeps } from '../../server/deps.js';
import { silentLogger } from '../../server/lib/logger.js';
import { ensureSecrets } from '../../server/secrets.js';
import { createTestDatabase, onPg, type TestDatabase } from '../helpers/pg.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * Two instances on one PostgreSQL database, started without TOKEN_ENCRYPTION_KEY: the first
 * made its key in its DATA_DIR without a word, and the second one, making another, was
 * refused with "the key was changed, or DATA_DIR/secrets.json was replaced or lost", leaving
 * its useless secrets.json behind.
 */
(onPg() ? describe : describe.skip)('a second instance without TOKEN_ENCRYPTION_KEY', () => {
  const dirs = [tempDir(), tempDir()];
  let db: TestDatabase;
  afterAll(async () => {
    await db?.drop();
    for (const d of dirs) d.cleanup();
  });

  it('is told every instance needs the same key, and keeps no key of its own', async () => {
    db = await createTestDatabase();
    const env = (dir: string) => ({
      DATA_DIR: dir,
      DATABASE_URL: db.url,
      B24_CLIENT_ID: 'local.test',
      B24_CLIENT_SECRET: 'test-client-secret',
    });
    const start = (dir: string) => {
      const config = loadConfig(env(dir), ensureSecrets(dir, env(dir)));
      return { config, deps: createDeps(config, { logger: silentLogger() }) };
    };
    const first = start(dirs[0]!.dir);
    await (await first.deps).close();
    expect(sharedKeyWarnings(first.config).join('\n')).toContain(
      'every instance on this PostgreSQL database needs the same one',
    );

    const second = start(dirs[1]!.dir);
    const err = await second.deps.catch((e: unknown) => e);
    expect((err as Error).message).toContain(
      'Every instance on one PostgreSQL database needs the same TOKEN_ENCRYPTION_KEY',
    );
    expect(fs.existsSync(path.join(dirs[1]!.dir, 'secrets.json'))).toBe(false);
    // Control: the first instance's key is kept, and its second start opens the database.
    expect(fs.existsSync(path.join(dirs[0]!.dir, 'secrets.json'))).toBe(true);
    await (await start(dirs[0]!.dir).deps).close();
  });
});
