import { createDeps } from './deps.js';
import { AppError, ConfigError } from './lib/errors.js';
import { appParts } from './routes/index.js';
import { createServices } from './services.js';
import { loadConfigWithSecrets } from './secrets.js';
import { threadWriter } from './intake/writer.js';
import { gateConnections } from '../db/connection-gate.js';
import { watchStatements } from '../db/connect.js';
import { statementWatch } from './lib/slow-statements.js';
import { openInstanceLock } from './cluster/instance-lock.js';
import { takeSqliteServerLock } from './cluster/sqlite-server-lock.js';
import { backfillMatchSla } from './rules/sla-rules.js';
import { releaseDeadHolders } from './queue/start-sweep.js';
import { buildListener, listen, type RunningServer } from './start.js';
import { installReadiness } from './install/install-portal.js';
import fs from 'node:fs';
import { sealStoredMaps } from './rules/saved-map.js';
import {
  channelWarnings,
  dataFileWarnings,
  oauthZoneWarnings,
  publicDeploymentWarnings,
  secretEnvWarnings,
  sharedKeyWarnings,
  unknownEventWarnings,
} from './config/warnings.js';
import path from 'node:path';
import { describeConnectError } from '../db/connect-error.js';
import type { DbTarget } from '../db/connect.js';

/** Lock wait of the main thread's SQLite connection (better-sqlite3 blocks while waiting). */
const MAIN_BUSY_TIMEOUT_MS = 250;

/**
 * `.env` in the working directory (or the file ENV_FILE names), read with Node's own parser;
 * variables already in the environment win over the file.
 */
function loadDotEnv(): void {
  const file = path.resolve(process.env.ENV_FILE?.trim() || '.env');
  if (fs.existsSync(file)) process.loadEnvFile(file);
  else if (process.env.ENV_FILE?.trim()) {
    throw new ConfigError([`ENV_FILE names ${file}, which does not exist`]);
  }
}

/** The database while it is being opened: a failure to reach it is told in one line. */
let opening: DbTarget | undefined;

/** The only place that reads process.env: wires real dependencies and serves. */
async function main(): Promise<void> {
  loadDotEnv();
  const env = process.env;
  const dataDir = path.resolve(env.DATA_DIR?.trim() || './data');
  const config = loadConfigWithSecrets(env, dataDir);
  opening = config.database;
  // Taken before the migrations: a second server on the file changes nothing of it.
  const serverLock =
    config.database.client === 'sqlite'
      ? takeSqliteServerLock(config.database.filename)
      : undefined;
  // The main thread serves every request: a write there must not wait long for a lock held
  // by another process (a locked database answers 503 at the intake, on its own thread).
  const deps = await createDeps(config, {
    busyTimeoutMs: MAIN_BUSY_TIMEOUT_MS,
    beforeRecount: backfillMatchSla,
  });
  opening = undefined;
  // Which statement a stall was: timed into /metrics, the slow ones logged with their SQL.
  watchStatements(
    deps.db,
    statementWatch({
      logger: deps.logger,
      observe: (s) => deps.metrics.dbStatementSeconds.observe(s),
      sqlite: config.database.client === 'sqlite',
    }),
  );
  const readiness = installReadiness(config);
  if (readiness) {
    deps.logger[readiness.level]({ install: 'not_proven' }, readiness.message);
    process.stderr.write(`\n*** ${readiness.message}\n\n`);
  }
  // Said once at start, each with what it is about in the log line.
  const warnings: Array<[Record<string, string>, string[]]> = [
    [{ deployment: 'public' }, publicDeploymentWarnings(config)],
    [{ data: 'permissions' }, dataFileWarnings(config)],
    [{ config: 'TOKEN_ENCRYPTION_KEY' }, sharedKeyWarnings(config)],
    [{ config: 'B24_EVENTS' }, unknownEventWarnings(config)],
    [{ config: 'B24_OAUTH_ZONE_SERVERS' }, oauthZoneWarnings(config)],
    [{ config: 'channels' }, channelWarnings(config)],
    [{ config: 'ACTION_SECRET_ENV' }, secretEnvWarnings(config)],
  ];
  for (const [about, list] of warnings) {
    for (const warning of list) {
      deps.logger.warn(about, warning);
      process.stderr.write(`*** ${warning}\n`);
    }
  }
  // Maps stored before step secrets were encrypted get encrypted now (a few rows).
  await sealStoredMaps(deps);
  // SQLite writes of the intake run on their own thread so fsyncs never stall requests.
  const intakeWriter =
    config.database.client === 'sqlite'
      ? threadWriter(
          config.database,
          new URL('./intake/writer-thread.js', import.meta.url),
          gateConnections(deps.db),
        )
      : undefined;
  // Several instances may share PostgreSQL: each holds a presence lock (server/cluster/).
  const instanceLock =
    config.database.client === 'pg'
      ? await openInstanceLock(config.database.connectionString, deps.logger)
      : undefined;
  const services = createServices(deps, { intakeWriter, instanceLock });
  // Before the listener opens: the last good Bitrix24 list, so no delivery is admitted from
  // any address while it loads.
  await services.intake.allowlist.start();
  // Jobs left `running` by processes that are gone go back to the queue; those of live ones
  // (a CLI with a worker, another server) stay theirs.
  await releaseDeadHolders(deps.db, { now: Date.now(), leaseMs: 10 * 60_000, logger: deps.logger });
  // Signals are handled from here on: a SIGTERM right after the banner still stops cleanly.
  let running: RunningServer | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    // /readyz answers 503 from now on, while requests are still served: a load balancer
    // polling it takes this instance out before the listener closes.
    deps.lifecycle.stopping = true;
    // And every answer closes its connection: by the end of the delay the busy ones are gone.
    running?.drain();
    deps.logger.info({ signal, delaySeconds: config.shutdownDelaySeconds }, 'shutting down');
    const timer = setTimeout(() => process.exit(1), 30_000 + config.shutdownDelaySeconds * 1000);
    timer.unref();
    if (config.shutdownDelaySeconds > 0) {
      await new Promise((r) => setTimeout(r, config.shutdownDelaySeconds * 1000));
    }
    await running?.close();
    await services.close(20_000);
    await instanceLock?.close();
    await deps.close();
    serverLock?.release();
    deps.logger.info({ signal }, 'stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  services.worker.start();
  services.alerts.start();
  services.offline.start();
  // Retention: prunes old events in small batches, yielding to the intake.
  services.retention.start();
  // Heartbeat, and a sweep for lost deliveries when the app was away (in the background).
  void services.recovery.start();
  running = await listen(deps, buildListener(deps, appParts(deps, services)));
  if (stopping) return;
  const { handlers, placements } = deps.manifest;
  const base = config.appUrl;
  deps.logger.info({ url: running.url, appUrl: base }, 'b24hooks listening');
  process.stderr.write(
    [
      '',
      `b24hooks ${deps.manifest.version} is listening on ${running.url}`,
      `Data: ${config.dataDir}  Database: ${config.database.client}`,
      '',
      'Paste into the Bitrix24 local application form (Developer resources → Other → Local application):',
      `  Your handler path:           ${base}${handlers.app}`,
      `  Initial installation path:   ${base}${handlers.install}`,
      `  Assign permissions (scopes): ${deps.manifest.scopes.join(', ')}`,
      `Event handler URL (bound automatically at install): ${base}${handlers.events}`,
      ...placements.map((p) => `Placement ${p.code}: ${base}${p.handler}`),
      base.startsWith('https://')
        ? ''
        : 'Note: Bitrix24 calls the app from the internet; set APP_URL to its public https:// address.',
      '',
    ].join('\n'),
  );
}

main().catch((e: unknown) => {
  // A bad configuration or a wrong TOKEN_ENCRYPTION_KEY: the message says what to do.
  const unreachable = opening && describeConnectError(e, opening);
  if (e instanceof AppError && e.code === 'CONFIG')
    process.stderr.write(`b24hooks: ${e.message}\n`);
  else if (unreachable) process.stderr.write(`b24hooks: cannot start: ${unreachable}\n`);
  else process.stderr.write(`b24hooks: failed to start: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
