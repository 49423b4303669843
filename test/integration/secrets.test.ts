import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { ensureSecrets } from '../../server/secrets.js';
import { openDb } from '../../db/connect.js';
import { migrateToLatest } from '../../db/migrate.js';
import { loadConfig } from '../../server/config.js';
import { ConfigError } from '../../server/lib/errors.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('generated secrets', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('are generated once into DATA_DIR with mode 0600 and reused after', () => {
    const dataDir = path.join(tmp.dir, 'data');
    const first = ensureSecrets(dataDir, {});
    const file = path.join(dataDir, 'secrets.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    const second = ensureSecrets(dataDir, {});
    // The same secrets, read back this time (the first start wrote them).
    expect(second).toEqual({ ...first, created: undefined });
    expect([first?.created, second?.created]).toEqual([true, undefined]);
    const config = loadConfig({ DATA_DIR: dataDir }, second);
    expect(config.tokenEncryptionKey).toHaveLength(32);
  });

  it('are not written when the environment provides both', () => {
    const dataDir = path.join(tmp.dir, 'given');
    expect(
      ensureSecrets(dataDir, {
        SESSION_SECRET: 'x'.repeat(20),
        TOKEN_ENCRYPTION_KEY: 'a'.repeat(64),
      }),
    ).toBeUndefined();
    expect(fs.existsSync(path.join(dataDir, 'secrets.json'))).toBe(false);
  });

  it('names DATA_DIR in a configuration error when the folder cannot be written', () => {
    // A file where the folder should be: ENOTDIR (as root, permissions would not stop it).
    const file = path.join(tmp.dir, 'a-file');
    fs.writeFileSync(file, '');
    const dataDir = path.join(file, 'data');
    let err: unknown;
    try {
      ensureSecrets(dataDir, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`DATA_DIR ${dataDir} is not a writable folder`);
  });
});

/**
 * The database holds every portal's event log, sealed tokens and rule secrets; it used to be
 * created as the umask left it (0644 in a 0755 folder): readable by every user of the machine.
 */
describe('a new SQLite database', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('is readable by its owner only, its -wal and -shm too, in a folder only the owner enters', async () => {
    const file = path.join(tmp.dir, 'fresh', 'b24hooks.sqlite');
    const db = openDb({ client: 'sqlite', filename: file });
    try {
      await migrateToLatest(db);
      await db('settings').insert({ scope: 'x', key: 'y', value: '1', updated_at: 1 });
      for (const f of [file, `${file}-wal`, `${file}-shm`]) {
        expect([f, fs.statSync(f).mode & 0o777]).toEqual([f, 0o600]);
      }
      expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    } finally {
      await db.destroy();
    }
    // An existing file keeps the permissions its operator gave it.
    fs.chmodSync(file, 0o640);
    const again = openDb({ client: 'sqlite', filename: file });
    await again.raw('select 1');
    await again.destroy();
    expect(fs.statSync(file).mode & 0o777).toBe(0o640);
  });
});

/**
 * An existing file keeps its mode (above), so a database from before files were made 0600,
 * or one restored from a backup, stays readable by everyone: the start says so, once.
 */
describe('data files other users may read', () => {
  it('are named at start, with their modes; a data dir made by the server is not', async () => {
    const tmp = tempDir();
    try {
      const warning = (err: string) => err.split('\n').find((l) => l.includes('other users'));
      const fresh = await spawnServer({ DATA_DIR: tmp.dir });
      await fresh.stop();
      // Control: the files it made are its own, so nothing is said.
      expect(warning(fresh.stderr())).toBeUndefined();
      const file = path.join(tmp.dir, 'b24hooks.sqlite');
      fs.chmodSync(file, 0o644);
      fs.chmodSync(path.join(tmp.dir, 'secrets.json'), 0o640);
      const old = await spawnServer({ DATA_DIR: tmp.dir });
      await old.stop();
      expect(warning(old.stderr())).toBe(
        `*** other users of this machine may read or write ${file} (0644), ${path.join(tmp.dir, 'secrets.json')} (0640): ` +
          "the database holds every portal's event log and sealed tokens, secrets.json the key to them; chmod 600 them (new ones are made so)",
      );
      // Said, not changed: the operator decides.
      expect(fs.statSync(file).mode & 0o777).toBe(0o644);
    } finally {
      tmp.cleanup();
    }
  });
});
