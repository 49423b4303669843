import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { ensureSecrets } from '../../server/secrets.js';
import { loadConfig } from '../../server/config.js';
import { ConfigError } from '../../server/lib/errors.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('generated secrets', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('are generated once into DATA_DIR with mode 0600 and reused after', () => {
    const dataDir = path.join(tmp.dir, 'data');
    const first = ensureSecrets(dataDir, {});
    const file = path.join(dataDir, 'secrets.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const second = ensureSecrets(dataDir, {});
    expect(second).toEqual(first);
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
