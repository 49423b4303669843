import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { decodeKey, loadConfig, type Config, type Env, type GeneratedSecrets } from './config.js';
import type { SecretBox } from './lib/crypto.js';
import { ConfigError } from './lib/errors.js';
import { openSecretBox } from './keys/key-check.js';

export const SECRETS_FILE = 'secrets.json';

/**
 * Zero-config start: when SESSION_SECRET or TOKEN_ENCRYPTION_KEY is not given, generate it
 * once into DATA_DIR/secrets.json (mode 0600) and reuse it on every later start. Losing this
 * file makes stored tokens unreadable, so it is never regenerated when present.
 */
export function ensureSecrets(dataDir: string, env: Env): GeneratedSecrets | undefined {
  if (env.SESSION_SECRET?.trim() && env.TOKEN_ENCRYPTION_KEY?.trim()) return undefined;
  const file = path.join(dataDir, SECRETS_FILE);
  const database = sqliteFileOf(dataDir, env);
  if (!fs.existsSync(file) && !env.TOKEN_ENCRYPTION_KEY?.trim() && isSqliteFile(database)) {
    // A new key would open none of the tokens stored with the old one, and the start would
    // then refuse anyway, leaving a secrets.json with the wrong key to be backed up as the
    // right one.
    throw new ConfigError([
      `${database} is there but ${file} is not: the key it was written with is in the ${SECRETS_FILE} backed up with it (or in TOKEN_ENCRYPTION_KEY); put it back. A new key would open none of its tokens`,
    ]);
  }
  if (fs.existsSync(file)) {
    const parsed = readSecretsFile(file);
    if (
      typeof parsed?.sessionSecret === 'string' &&
      typeof parsed.tokenEncryptionKey === 'string'
    ) {
      return { sessionSecret: parsed.sessionSecret, tokenEncryptionKey: parsed.tokenEncryptionKey };
    }
    throw new ConfigError([
      `${file} is damaged: it lacks sessionSecret or tokenEncryptionKey (restore it from the backup taken with the database)`,
    ]);
  }
  const secrets: GeneratedSecrets = {
    sessionSecret: randomBytes(32).toString('base64url'),
    tokenEncryptionKey: randomBytes(32).toString('hex'),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeDurably(tmp, JSON.stringify(secrets, null, 2) + '\n');
    replaceDurably(tmp, file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw e;
    // A one-line reason instead of a stack trace from deep inside fs.
    throw new ConfigError([
      `DATA_DIR ${dataDir} is not a writable folder (${code}): the generated secrets and the SQLite file live there; fix its owner or permissions, or point DATA_DIR elsewhere`,
    ]);
  }
  return { ...secrets, created: true };
}

/** Stands in for the generated secrets while the rest of the configuration is checked. */
const UNCHECKED: GeneratedSecrets = {
  sessionSecret: 'x'.repeat(43),
  tokenEncryptionKey: '0'.repeat(64),
};

/**
 * The configuration, with DATA_DIR's generated secrets where the environment gives none. The
 * other variables are checked first: a start refused for a typo in one of them made DATA_DIR
 * and a new key all the same.
 */
export function loadConfigWithSecrets(env: Env, dataDir: string): Config {
  loadConfig(env, UNCHECKED);
  return loadConfig(env, ensureSecrets(dataDir, env));
}

/** Whether `file` is a SQLite database (its header), not a missing, empty or other file. */
function isSqliteFile(file: string | undefined): boolean {
  if (!file) return false;
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(16);
    return (
      fs.readSync(fd, head, 0, 16, 0) === 16 && head.toString('latin1') === 'SQLite format 3\0'
    );
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The SQLite file the configuration names (DATA_DIR's, or a `sqlite:` DATABASE_URL's); undefined on PostgreSQL. */
export function sqliteFileOf(dataDir: string, env: Env): string | undefined {
  const url = env.DATABASE_URL?.trim();
  if (url && !/^sqlite:/i.test(url)) return undefined;
  const named = url?.replace(/^sqlite:(\/\/)?/i, '');
  return named ? path.resolve(named) : path.join(dataDir, 'b24hooks.sqlite');
}

/**
 * secrets.json's contents; an unreadable file or one that is not JSON is a one-line
 * configuration error naming the file (never its contents), not a stack trace.
 */
function readSecretsFile(file: string): Partial<GeneratedSecrets> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([
      `cannot read ${file} (${code}): the server's user must be able to read it; fix its owner or permissions`,
    ]);
  }
  try {
    return JSON.parse(text) as Partial<GeneratedSecrets> | undefined;
  } catch {
    throw new ConfigError([
      `${file} is damaged: it is not JSON (restore it from the backup taken with the database)`,
    ]);
  }
}

/** Writes a secrets file (mode 0600) and flushes it to the disk before returning. */
export function writeDurably(file: string, text: string): void {
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Renames `from` over `to` and flushes the directory, so the rename survives a power loss. */
export function replaceDurably(from: string, to: string): void {
  fs.renameSync(from, to);
  const dir = fs.openSync(path.dirname(to), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

/**
 * rotate-key's last step: the staged secrets take secrets.json's place. A server that
 * started since the database committed may have done it already (finishStagedRotation):
 * then secrets.json holds `newKey` and there is nothing left to do.
 */
export function promoteStagedSecrets(dataDir: string, newKey: Buffer): void {
  const file = path.join(dataDir, SECRETS_FILE);
  try {
    replaceDurably(stagedSecretsFile(dataDir), file);
  } catch (e) {
    const now = ensureSecrets(dataDir, {})?.tokenEncryptionKey;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || now !== newKey.toString('hex')) throw e;
  }
}

/**
 * `rotate-key` writes the new secrets here before the database commits to the new key, and
 * renames it over secrets.json right after (server/cli/rotate-key.ts).
 */
export const stagedSecretsFile = (dataDir: string): string =>
  path.join(dataDir, `${SECRETS_FILE}.rotating`);

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
