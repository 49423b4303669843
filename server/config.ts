import { ConfigError } from './lib/errors.js';
import { parseBitrix24 } from './config/bitrix24.js';
import { parseActions, parseChannels } from './config/outputs.js';
import { envReader, type EnvReader } from './config/reader.js';
import { parseLimits, parseSecrets, parseSenders } from './config/requests.js';
import { parseServer } from './config/server.js';
import type { Config, Env, GeneratedSecrets } from './config/types.js';

export type { Config, Env, GeneratedSecrets, SmsProvider } from './config/types.js';
export {
  DEFAULT_OAUTH_SERVERS,
  DEFAULT_OAUTH_ZONE_SERVERS,
  DEFAULT_PORTAL_HOSTS,
} from './config/bitrix24.js';
export { decodeKey, parseByteSize } from './config/requests.js';

/**
 * Validates the environment once and returns a frozen config. Every problem is collected and
 * reported together in one ConfigError. Each section has its parser in server/config/; the
 * variables, their defaults and meanings are listed in the README's configuration table.
 */
export function loadConfig(env: Env, generated?: GeneratedSecrets, cwd = process.cwd()): Config {
  const r = envReader(env);
  const config: Config = {
    ...parseServer(r, cwd),
    b24: parseBitrix24(r),
    ...parseSenders(r),
    ...parseSecrets(r, generated),
    ...parseLimits(r),
    ...parseChannels(r),
    actions: parseActions(r),
    worker: {
      concurrency: r.int('WORKER_CONCURRENCY', 4, 1, 256),
      portalShare: r.share('WORKER_PORTAL_SHARE', 0.5),
      destinationConcurrency: r.int('DESTINATION_CONCURRENCY', 4, 1, 256),
      maxAttempts: r.int('MAX_ATTEMPTS', 10, 1, 1000),
      retryBaseSeconds: r.int('RETRY_BASE_SECONDS', 10, 1, 86400),
      settleMs: r.int('EVENT_SETTLE_MS', 1000, 0, 60_000),
      stepTimeoutMaxMs: r.int('STEP_TIMEOUT_MAX_SECONDS', 60, 1, 300) * 1000,
      portalStepCharsPerSecond: r.int('PORTAL_STEP_MB_PER_SECOND', 2, 0, 1024) * 1024 * 1024,
      portalMessagesPerDay: r.int('PORTAL_MESSAGES_PER_DAY', 1000, 0, 10_000_000),
    },
    alerts: {
      backlogThreshold: r.int('ALERT_BACKLOG_THRESHOLD', 50, 1, 100_000_000),
      cooldownMinutes: r.int('ALERT_COOLDOWN_MINUTES', 15, 1, 10080),
    },
    metricsToken: r.text('METRICS_TOKEN'),
    retention: retentionDays(r),
    shutdownDelaySeconds: r.int('SHUTDOWN_DELAY_SECONDS', 0, 0, 300),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return Object.freeze(config);
}

/**
 * `RETENTION_DAYS` and `RETENTION_FAILED_DAYS`. Unset, the second follows the first where 90
 * would keep failed events for less time than the others: `RETENTION_DAYS=0` ("0 keeps
 * everything") pruned failed events after 90 days all the same, and 120 pruned them before the
 * processed ones, though they are the ones an admin comes back to.
 */
function retentionDays(r: EnvReader): Config['retention'] {
  const days = r.int('RETENTION_DAYS', 30, 0, 36500);
  const followed = days === 0 ? 0 : Math.max(90, days);
  return { days, failedDays: r.int('RETENTION_FAILED_DAYS', followed, 0, 36500) };
}
