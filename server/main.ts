import { loadConfig } from './config.js';
import { createDeps } from './deps.js';
import { ConfigError } from './lib/errors.js';
import { appParts, createServices } from './routes/index.js';
import { ensureSecrets } from './secrets.js';
import { threadWriter } from './intake/writer.js';
import { gateConnections } from '../db/connection-gate.js';
import { openInstanceLock } from './cluster/instance-lock.js';
import { releaseStaleJobs } from '../db/stores/jobs.js';
import { buildListener, listen } from './start.js';
import { installReadiness } from './install/install-portal.js';
import { sealStoredMaps } from './rules/saved-map.js';
import path from 'node:path';

/** Lock wait of the main thread's SQLite connection (better-sqlite3 blocks while waiting). */
const MAIN_BUSY_TIMEOUT_MS = 250;

/** The only place that reads process.env: wires real dependencies and serves. */
async function main(): Promise<void> {
  const env = process.env;
  const dataDir = path.resolve(env.DATA_DIR?.trim() || './data');
  const config = loadConfig(env, ensureSecrets(dataDir, env));
  // The main thread serves every request: a write there must not wait long for a lock held
  // by another process (a locked database answers 503 at the intake, on its own thread).
  const deps = await createDeps(config, { busyTimeoutMs: MAIN_BUSY_TIMEOUT_MS });
  const readiness = installReadiness(config);
  if (readiness) {
    deps.logger[readiness.level]({ install: 'not_proven' }, readiness.message);
    process.stderr.write(`\n*** ${readiness.message}\n\n`);
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
  services.intake.allowlist.start();
  if (config.database.client === 'sqlite') {
    // One process owns a SQLite file: whatever is still `running` was left by a crash.
    await releaseStaleJobs(deps.db, Number.MAX_SAFE_INTEGER, Date.now());
  }
  services.worker.start();
  services.alerts.start();
  services.offline.start();
  // Retention (issue 20): prunes old events in small batches, yielding to the intake.
  services.retention.start();
  // Heartbeat, and a sweep for lost deliveries when the app was away (in the background).
  void services.recovery.start();
  const running = await listen(deps, buildListener(deps, appParts(deps, services)));
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

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    deps.logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => process.exit(1), 30_000);
    timer.unref();
    await running.close();
    await services.close(20_000);
    await instanceLock?.close();
    await deps.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) process.stderr.write(`b24hooks: ${e.message}\n`);
  else process.stderr.write(`b24hooks: failed to start: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
