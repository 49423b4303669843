import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, type Config, type Env } from '../../server/config.js';
import type { BitrixRestOptions } from '../../server/bitrix/rest.js';
import { createDeps, type Deps } from '../../server/deps.js';
import { createCollectingLogger } from './collecting-logger.js';
import { createManualClock, type ManualClock } from './manual-clock.js';
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
    // The offline safety net (issue 8) adds bindings, ONOFFLINEEVENT deliveries and REST
    // calls; tests of other behaviour count those, so only the recovery tests turn it on.
    B24_OFFLINE_EVENTS: 'off',
    ...env,
  });
}

export interface TestDeps {
  deps: Deps;
  clock: ManualClock;
  logs: ReturnType<typeof createCollectingLogger>;
  dir: string;
  dbFile: string;
  close(): Promise<void>;
}

/** Real deps: a SQLite file in a temp dir with migrations applied, a manual clock, a collecting logger. */
export async function createTestDeps(
  env: Env = {},
  opts: { clock?: ManualClock; bitrix?: BitrixRestOptions } = {},
): Promise<TestDeps> {
  const tmp = tempDir();
  const config = testConfig(tmp.dir, env);
  const clock = opts.clock ?? createManualClock();
  const logs = createCollectingLogger();
  const deps = await createDeps(config, { clock, logger: logs.logger, bitrix: opts.bitrix });
  return {
    deps,
    clock,
    logs,
    dir: tmp.dir,
    dbFile: path.join(tmp.dir, 'b24hooks.sqlite'),
    async close() {
      await deps.close();
      tmp.cleanup();
    },
  };
}
