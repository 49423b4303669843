import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { openDb } from '../db/connect.js';
import { migrateToLatest, pendingMigrations } from '../db/migrate.js';
import type { Config } from './config.js';
import { createHttpGuard, type HostResolver, type HttpGuard } from './lib/http-guard.js';
import { createMailRoutes, type MailRoutes } from './lib/mail-route.js';
import { createBitrixRest, type BitrixRest, type BitrixRestOptions } from './bitrix/rest.js';
import { portalAddressAllowance } from './bitrix/hosts.js';
import { systemClock, type Clock } from './lib/clock.js';
import { createSecretBox, type SecretBox } from './lib/crypto.js';
import { KeyMismatchError, openSecretBox } from './keys/key-check.js';
import { finishStagedRotation, SECRETS_FILE } from './secrets.js';
import { createLogger, type Logger } from './lib/logger.js';
import { projectRoot } from './lib/project-root.js';
import { loadManifest, type Manifest } from './manifest.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createPortalDirectory, type PortalDirectory } from './portal-directory.js';

/** Everything the app, the worker and the CLI share. Built once by `createDeps`. */
export interface Deps {
  readonly config: Config;
  readonly db: Knex;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly box: SecretBox;
  readonly manifest: Manifest;
  readonly metrics: Metrics;
  /** Cached portal lookups by member_id; call `invalidate` after changing a portal. */
  readonly portals: PortalDirectory;
  /** Repository root: views/, placement/, manifest.json. */
  readonly root: string;
  /** The Bitrix24 REST client (rate limiter, token refresh state) shared by everything. */
  readonly bitrix: BitrixRest;
  /** Where the process is in its life; `/readyz` answers 503 once `stopping` is set. */
  readonly lifecycle: Lifecycle;
  /** The dispatcher `http` steps connect through (ACTION_PRIVATE_HOSTS, http-guard.ts). */
  readonly httpGuard: HttpGuard;
  /** Where the SMTP server would deliver a domain's mail, for `email` steps (mail-route.ts). */
  readonly mailRoutes: MailRoutes;
  /** Closes what createDeps opened. */
  close(): Promise<void>;
}

export interface Lifecycle {
  /** Set at SIGTERM, before the listener closes, so a proxy stops sending first. */
  stopping: boolean;
}

export interface DepsOverrides {
  db?: Knex;
  logger?: Logger;
  /**
   * Where the database driver's own messages go (the logger above if not given). The CLI
   * keeps only its errors: a connection it could not open is said in the command's one line,
   * after which knex's "Acquire connection error" warning was a second, raw copy.
   */
  knexLogger?: Logger;
  clock?: Clock;
  manifest?: Manifest;
  metrics?: Metrics;
  /** Skip applying migrations (the CLI's `migrate` does it itself). */
  skipMigrations?: boolean;
  /**
   * Refuse a database older than this release instead of migrating it (the CLI's read-only
   * commands); the key is still checked.
   */
  readOnly?: boolean;
  /** Options of the REST client (rate limits, fetch) — tests use a fast drain. */
  bitrix?: BitrixRestOptions;
  /** SQLite: how long a write on this connection waits for a lock (see openDb). */
  busyTimeoutMs?: number;
  /** How `http` steps resolve host names (tests: a name that resolves to loopback). */
  resolveHost?: HostResolver;
  /** How `email` steps find where a domain's mail goes (tests: a name server on loopback). */
  mailRoutes?: MailRoutes;
  /**
   * Before the count of the figures an upgrade across the rollups (0016) still lacks
   * (db/migrate.ts): the server and the CLI fill in the rules' SLA of the rule matches
   * stored before they kept it (server/rules/sla-rules.ts backfillMatchSla), which the
   * count skipped: the SLA figures read 0 until `rollups rebuild`.
   */
  beforeRecount?: (db: Knex) => Promise<unknown>;
}

export async function createDeps(configured: Config, overrides: DepsOverrides = {}): Promise<Deps> {
  let config = configured;
  const root = projectRoot();
  const logger = overrides.logger ?? createLogger(config.logLevel);
  const db =
    overrides.db ??
    openDb(config.database, {
      busyTimeoutMs: overrides.busyTimeoutMs,
      log: (level, message) =>
        (overrides.knexLogger ?? logger)[level]({ component: 'knex' }, message),
    });
  if (overrides.readOnly) {
    const pending = await pendingMigrations(db);
    if (pending.length > 0) {
      if (!overrides.db) await db.destroy();
      throw new Error(
        `the database is older than this release (${pending.length} migrations to apply, ` +
          `from ${pending[0]}): run \`b24hooks migrate\` (or start the server) first`,
      );
    }
  } else if (!overrides.skipMigrations) {
    const applied = await migrateToLatest(db, { beforeRecount: overrides.beforeRecount });
    // An upgrade says what it changed in the database (`migrate` prints the same).
    if (applied.length > 0) {
      logger.info(
        { migrations: applied.length, first: applied[0], last: applied.at(-1) },
        'database migrations applied',
      );
    }
  }
  // The key check (server/keys/key-check.ts) needs its table: `migrate` (skipMigrations)
  // decrypts nothing.
  let box: SecretBox;
  let finished = false;
  try {
    box = overrides.skipMigrations
      ? createSecretBox(config.tokenEncryptionKey)
      : await openSecretBox(db, config.tokenEncryptionKey, Date.now());
  } catch (e) {
    const staged =
      e instanceof KeyMismatchError
        ? await finishStagedRotation(db, config, Date.now()).catch(() => undefined)
        : undefined;
    if (!staged) {
      if (!overrides.db) await db.destroy();
      throw keyOfAnotherInstance(e, config) ?? e;
    }
    ({ box } = staged);
    config = { ...config, tokenEncryptionKey: staged.key };
    finished = true;
  }
  const clock = overrides.clock ?? systemClock;
  const httpGuard = createHttpGuard(config.actions.privateHosts, overrides.resolveHost);
  const ownRoutes = overrides.mailRoutes
    ? undefined
    : createMailRoutes({ resolve: overrides.resolveHost });
  const mailRoutes: MailRoutes = overrides.mailRoutes ?? ownRoutes!;
  // Portal and OAuth requests connect through the same kind of guard: a portal host matching a
  // wildcard of B24_PORTAL_HOSTS is a stranger's choice and may not resolve into our network.
  const portalGuard = createHttpGuard(portalAddressAllowance(config), overrides.resolveHost);
  if (finished) {
    logger.warn(
      { dataDir: config.dataDir },
      'finished a key rotation that had stopped before secrets.json was replaced: the new key is in use',
    );
  }
  const manifest = overrides.manifest ?? loadManifest(root);
  const deps: Omit<Deps, 'bitrix'> = {
    config,
    db,
    logger,
    clock,
    portals: createPortalDirectory(db, Date.now),
    box,
    manifest,
    metrics:
      overrides.metrics ??
      createMetrics({
        defaultMetrics: true,
        // The events every portal binds unless its admin chose others: always labels.
        knownEvents: [...(config.b24.events ?? []), ...manifest.events],
      }),
    root,
    lifecycle: { stopping: false },
    httpGuard,
    mailRoutes,
    async close() {
      ownRoutes?.cancel();
      await httpGuard.close();
      await portalGuard.close();
      if (!overrides.db) await db.destroy();
    },
  };
  return {
    ...deps,
    bitrix: createBitrixRest(deps, {
      ...overrides.bitrix,
      fetch: overrides.bitrix?.fetch ?? portalGuard.fetch,
    }),
  };
}

/**
 * A second instance on one PostgreSQL database started without TOKEN_ENCRYPTION_KEY: it made
 * a key of its own in its DATA_DIR, which cannot open what the first one wrote. Said as that
 * (the general message spoke of a changed or lost key), and the useless secrets.json it just
 * wrote is removed, so that it is not backed up as this instance's key.
 */
function keyOfAnotherInstance(e: unknown, config: Config): KeyMismatchError | undefined {
  if (!(e instanceof KeyMismatchError) || config.database.client !== 'pg') return undefined;
  if (!config.tokenKeyCreated) return undefined;
  const file = path.join(config.dataDir, SECRETS_FILE);
  fs.rmSync(file, { force: true });
  return new KeyMismatchError(
    e,
    `this instance made a new key in ${file} (removed again), but the database was written by an instance with another key. Every instance on one PostgreSQL database needs the same TOKEN_ENCRYPTION_KEY and SESSION_SECRET: set them in this instance's environment (the first instance's are in its DATA_DIR/secrets.json).`,
  );
}
