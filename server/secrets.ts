import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Env, GeneratedSecrets } from './config.js';

export const SECRETS_FILE = 'secrets.json';

/**
 * Zero-config start: when SESSION_SECRET or TOKEN_ENCRYPTION_KEY is not given, generate it
 * once into DATA_DIR/secrets.json (mode 0600) and reuse it on every later start. Losing this
 * file makes stored tokens unreadable, so it is never regenerated when present.
 */
export function ensureSecrets(dataDir: string, env: Env): GeneratedSecrets | undefined {
  if (env.SESSION_SECRET?.trim() && env.TOKEN_ENCRYPTION_KEY?.trim()) return undefined;
  const file = path.join(dataDir, SECRETS_FILE);
  if (fs.existsSync(file)) {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<GeneratedSecrets>;
    if (typeof parsed.sessionSecret === 'string' && typeof parsed.tokenEncryptionKey === 'string') {
      return { sessionSecret: parsed.sessionSecret, tokenEncryptionKey: parsed.tokenEncryptionKey };
    }
    throw new Error(`${file} is damaged: it lacks sessionSecret or tokenEncryptionKey`);
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const secrets: GeneratedSecrets = {
    sessionSecret: randomBytes(32).toString('base64url'),
    tokenEncryptionKey: randomBytes(32).toString('hex'),
  };
  const tmp = `${file}.${process.pid}.tmp`;
  writeDurably(tmp, JSON.stringify(secrets, null, 2) + '\n');
  replaceDurably(tmp, file);
  return secrets;
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
 * `rotate-key` writes the new secrets here before the database commits to the new key, and
 * renames it over secrets.json right after (server/cli/rotate-key.ts).
 */
export const stagedSecretsFile = (dataDir: string): string =>
  path.join(dataDir, `${SECRETS_FILE}.rotating`);
