import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, type Config, type Env } from '../../server/config.js';
import type { HostResolver } from '../../server/lib/http-guard.js';
import type { BitrixRestOptions } from '../../server/bitrix/rest.js';
import { createDeps, type Deps } from '../../server/deps.js';
import { createCollectingLogger } from './collecting-logger.js';
import { createManualClock, type ManualClock } from './manual-clock.js';
import { createTestDatabase, onPg } from './pg.js';
import { tempDir } from './temp-dir.js';

/** A config as production would load it, over a temp data dir, with overrides as env vars. */
export function testConfig(dataDir: string, env: Env = {}): Config {
  return loadConfig({
    DATA_DIR: dataDir,
    SESSION_SECRET: 'test-session-secret-0123456789',
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    B24_CLIENT_ID: 'local.test',
    B24_CLIENT_SECRET: 'test-client-secret',
    LOG_LEVEL: 'debug',
    // The offline safety net (server/README.md#loss-recovery) adds bindings, ONOFFLINEEVENT
    // deliveries and REST calls; tests of other behaviour count those, so only the recovery tests
    // turn it on.
    B24_OFFLINE_EVENTS: 'off',
    // Tests run the worker by hand on a manual clock and expect a delivery's job due at once;
    // the settling time has its own tests (test/integration/settle.test.ts).
    EVENT_SETTLE_MS: '0',
    // Tests post to stand-ins on loopback; the tests of the address policy set it empty.
    ACTION_PRIVATE_HOSTS: '127.0.0.0/8',
    ...env,
  });
}

export interface TestDeps {
  deps: Deps;
  clock: ManualClock;
  logs: ReturnType<typeof createCollectingLogger>;
  dir: string;
  /** The SQLite file (absent when the run is on PostgreSQL). */
  dbFile: string;
  /** `{ DATABASE_URL }` on PostgreSQL, `{}` on SQLite: what a CLI or a spawned server adds. */
  dbEnv: Record<string, string>;
  close(): Promise<void>;
}

/** The environment that points a CLI or a spawned server at the same database as `config`. */
export function databaseEnv(config: Config): Record<string, string> {
  return config.database.client === 'pg' ? { DATABASE_URL: config.database.connectionString } : {};
}

/**
 * Real deps: a database with migrations applied (a SQLite file in a temp dir, or with
 * B24H_TEST_DB=pg a fresh PostgreSQL database, dropped by `close()`), a manual clock, a
 * collecting logger.
 */
export async function createTestDeps(
  env: Env = {},
  opts: { clock?: ManualClock; bitrix?: BitrixRestOptions; resolveHost?: HostResolver } = {},
): Promise<TestDeps> {
  const tmp = tempDir();
  const pgDb = onPg() && env.DATABASE_URL === undefined ? await createTestDatabase() : undefined;
  const config = testConfig(tmp.dir, { ...(pgDb ? { DATABASE_URL: pgDb.url } : {}), ...env });
  const clock = opts.clock ?? createManualClock();
  const logs = createCollectingLogger();
  const deps = await createDeps(config, {
    clock,
    logger: logs.logger,
    bitrix: opts.bitrix,
    resolveHost: opts.resolveHost,
  });
  return {
    deps,
    clock,
    logs,
    dir: tmp.dir,
    dbFile: path.join(tmp.dir, 'b24hooks.sqlite'),
    dbEnv: databaseEnv(config),
    async close() {
      await deps.close();
      await pgDb?.drop();
      tmp.cleanup();
    },
  };
}
