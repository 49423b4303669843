import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { getHeartbeat } from '../../db/stores/recovery.js';
import { liveInstanceKeys } from '../../db/stores/instances.js';
import { decodeKey } from '../config.js';
import { rotateKey } from '../keys/rotate.js';
import { takeSqliteServerLock, type ServerLock } from '../cluster/sqlite-server-lock.js';
import { ConfigError } from '../lib/errors.js';
import {
  ensureSecrets,
  promoteStagedSecrets,
  SECRETS_FILE,
  stagedSecretsFile,
  writeDurably,
} from '../secrets.js';
import type { CommandContext } from './context.js';
import { UsageError } from './io.js';

/** A heartbeat younger than this (and no clean stop) means a server may still be running. */
const LIVE_HEARTBEAT_MS = 2 * 60_000;

function newKeyFrom(ctx: CommandContext, fromEnv: boolean): { key: Buffer; generated: boolean } {
  const file = ctx.flags['new-key-file'];
  let raw: string | undefined;
  if (typeof file === 'string') {
    try {
      raw = fs.readFileSync(file, 'utf8');
    } catch (e) {
      // The command line is right and the file is not readable: a failure (exit 1), as in
      // `rules import`, not bad usage.
      throw new Error(
        `--new-key-file: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  } else raw = ctx.env?.NEW_TOKEN_ENCRYPTION_KEY?.trim() || undefined;
  if (raw !== undefined) {
    const key = decodeKey(raw);
    if (!key) {
      const reason = 'the new key must be 32 bytes as 64 hex characters or base64';
      // A file that holds something else is a failure (1), as a `rules import` file that is
      // not JSON; a value on the command line's environment is bad usage (2).
      if (typeof file === 'string') throw new Error(`--new-key-file: ${file}: ${reason}`);
      throw new UsageError(reason);
    }
    return { key, generated: false };
  }
  if (fromEnv) {
    throw new UsageError(
      'TOKEN_ENCRYPTION_KEY comes from the environment: give the new key with --new-key-file FILE or NEW_TOKEN_ENCRYPTION_KEY',
    );
  }
  return { key: randomBytes(32), generated: true };
}

/** Writes secrets.json with the new key beside the current one; returns that file. */
function stageSecrets(dataDir: string, newKey: Buffer): string {
  const current = ensureSecrets(dataDir, {});
  if (!current) throw new Error(`no ${SECRETS_FILE} in ${dataDir}`);
  const file = stagedSecretsFile(dataDir);
  const next = { ...current, tokenEncryptionKey: newKey.toString('hex') };
  // On the disk before the database commits to the key: a power loss must not keep the
  // commit and lose the key.
  writeDurably(file, JSON.stringify(next, null, 2) + '\n');
  return file;
}

/**
 * Refuses while a server may still write with the old key. A running server's own lock is
 * certain (SQLite's server lock, the instances' presence locks on PostgreSQL: the kernel or
 * PostgreSQL drops them with a dead process), so it is always asked; `--force` skips only
 * the heartbeat, which a crash leaves looking alive for two minutes. `--force` had skipped
 * both, and a server running beside the rotation failed every event after it ("unable to
 * authenticate data"). On SQLite the server lock is returned, held until the rotation ends:
 * no server starts meanwhile.
 */
async function assertStopped(ctx: CommandContext): Promise<ServerLock | undefined> {
  const { db, config } = ctx.deps;
  let lock: ServerLock | undefined;
  if (config.database.client === 'pg') {
    if ((await liveInstanceKeys(db)).size > 0)
      throw new Error('an instance is running on this database: stop every instance first');
  } else {
    try {
      lock = takeSqliteServerLock(config.database.filename);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      throw new Error('a b24hooks server is running on this database: stop it first');
    }
  }
  if (ctx.flags.force === true) return lock;
  const hb = await getHeartbeat(db);
  if (hb && hb.stopped_at === null && Date.now() - hb.beat_at < LIVE_HEARTBEAT_MS) {
    lock?.release();
    throw new Error(
      'the server seems to be running (heartbeat under 2 minutes old): stop it first, or pass --force if it crashed',
    );
  }
  return lock;
}

/**
 * `rotate-key [--new-key-file FILE] [--force]`: re-encrypts every stored secret with a new
 * TOKEN_ENCRYPTION_KEY. The current key is the configured one (environment or secrets.json).
 * With the key in secrets.json, a new key is generated (or taken from the file / variable)
 * and written there; with the key in the environment, the operator gives the new key and
 * sets it in the environment afterwards.
 */
export async function rotateKeyCommand(ctx: CommandContext): Promise<number> {
  const { deps, io, json } = ctx;
  const env = ctx.env ?? {};
  const fromEnv = Boolean(env.TOKEN_ENCRYPTION_KEY?.trim());
  const { key: newKey, generated } = newKeyFrom(ctx, fromEnv);
  const oldKey = deps.config.tokenEncryptionKey;
  if (newKey.equals(oldKey)) throw new UsageError('the new key is the current key');
  const lock = await assertStopped(ctx);
  let result;
  try {
    // With secrets.json, the new key is on disk (aside) before the database commits to it,
    // and takes the file's place right after.
    const pending = fromEnv ? undefined : stageSecrets(deps.config.dataDir, newKey);
    try {
      result = await rotateKey(deps.db, oldKey, newKey, Date.now());
    } catch (e) {
      if (pending) fs.rmSync(pending, { force: true });
      throw e;
    }
    // Should this stop before the rename, the next start finishes it (server/secrets.ts finishStagedRotation).
    if (pending) promoteStagedSecrets(deps.config.dataDir, newKey);
  } finally {
    lock?.release();
  }
  const keyStore = fromEnv ? 'environment' : 'secrets.json';
  if (json) {
    io.out(JSON.stringify({ rotated: result.total, columns: result.columns, keyStore }) + '\n');
  } else {
    io.out(`re-encrypted ${result.total} values with the new key\n`);
    for (const [c, n] of Object.entries(result.columns)) io.out(`  ${c}: ${n}\n`);
    io.out(
      fromEnv
        ? 'Now set TOKEN_ENCRYPTION_KEY to the new key wherever the app runs (.env, compose, systemd) and start it.\n'
        : `The new key is in ${deps.config.dataDir}/secrets.json${generated ? ' (generated)' : ''}; back it up with the database.\n`,
    );
  }
  return 0;
}
