import path from 'node:path';
import { ConfigError } from './lib/errors.js';
import { parseHostPattern, type HostPattern } from './lib/host-pattern.js';
import { parsePrivateHosts, type PrivateHosts } from './lib/address-policy.js';

/** The environment as a plain map; only `server/main.ts` passes `process.env` here. */
export type Env = Readonly<Record<string, string | undefined>>;

export type SmsProvider = 'generic' | 'twilio' | 'smsru';

export interface Config {
  /** `PORT`, default 3000. */
  readonly port: number;
  /** `HOST`, default 0.0.0.0. */
  readonly host: string;
  /** `APP_URL`: public base URL, no trailing slash; handler URLs given to Bitrix24 use it. */
  readonly appUrl: string;
  /** `DATA_DIR`, default ./data (absolute after loading). */
  readonly dataDir: string;
  /** `DATABASE_URL`; default `sqlite:<DATA_DIR>/b24hooks.sqlite`. */
  readonly database:
    | { readonly client: 'sqlite'; readonly filename: string }
    | {
        readonly client: 'pg';
        readonly connectionString: string;
      };
  readonly b24: {
    /** `B24_CLIENT_ID` / `B24_CLIENT_SECRET`: the app's OAuth credentials. */
    readonly clientId: string | undefined;
    readonly clientSecret: string | undefined;
    /** `B24_OAUTH_SERVERS`: origins (scheme://host[:port]) the client secret may be sent to. */
    readonly oauthServers: readonly string[];
    /**
     * `B24_OAUTH_ZONE_SERVERS`: the OAuth server of an install POST without SERVER_ENDPOINT,
     * by the portal's top-level domain (`ru=https://oauth.bitrix24.tech`, `*` = any other).
     * The chosen server must still be in `oauthServers`.
     */
    readonly oauthZoneServers: ReadonlyArray<{ readonly zone: string; readonly origin: string }>;
    /**
     * `B24_APP_CODE`: what `app.info` answers as CODE for our own tokens. A local app's CODE
     * is its client_id (the default); a marketplace app's is `vendor.appname`.
     */
    readonly appCode: string | undefined;
    /**
     * `B24_INSECURE_DEV_INSTALL`: accept installs without the OAuth server's confirmation
     * when B24_CLIENT_ID / B24_CLIENT_SECRET are unset. For a local demo only: anyone who
     * can reach the install URL can then claim any member_id. @default false
     */
    readonly insecureDevInstall: boolean;
    /** `B24_PORTAL_HOSTS`: hosts the app may call as a portal. */
    readonly portalHosts: readonly HostPattern[];
    /** `B24_EVENTS`: events bound at install (default: manifest.json `events`). */
    readonly events: readonly string[] | undefined;
    /**
     * `B24_OFFLINE_EVENTS`: also bind the chosen events as offline events and drain them
     * (loss recovery, issue 8). @default true
     */
    readonly offlineEvents: boolean;
    /**
     * `B24_OFFLINE_MIN_TIMEOUT`: `options[minTimeout]` of the ONOFFLINEEVENT binding, seconds
     * between two notices at most (each one costs REST calls to drain). @default 60
     */
    readonly offlineMinTimeoutSec: number;
    /** `B24_JS_SDK_URL`: where pages load the BX24 JS library from. */
    readonly jsSdkUrl: string;
  };
  /** `B24_IP_ALLOWLIST`: CIDRs (or the word `bitrix24`) allowed to post events; empty = off. */
  readonly ipAllowlist: readonly string[];
  /** `B24_IP_LIST_URLS`: where the `bitrix24` allowlist entry reads the sender lists. */
  readonly ipListUrls: readonly string[] | undefined;
  /** `TRUST_PROXY`: Express trust-proxy setting (hops count, `true`, or CIDR list). */
  readonly trustProxy: boolean | number | string;
  readonly sessionSecret: string;
  /** 32-byte key for AES-256-GCM encryption of tokens at rest. */
  readonly tokenEncryptionKey: Buffer;
  readonly worker: {
    readonly concurrency: number;
    /**
     * `WORKER_PORTAL_SHARE`: the largest share of the workers one portal may hold while other
     * portals have due jobs (issue 18); alone, a portal may use them all. @default 0.5
     */
    readonly portalShare: number;
    /**
     * `DESTINATION_CONCURRENCY`: requests at once to one destination (an http host, the
     * Telegram API, the SMTP server, the SMS gateway, a portal's REST endpoint). @default 4
     */
    readonly destinationConcurrency: number;
    readonly maxAttempts: number;
    readonly retryBaseSeconds: number;
  };
  /** `BODY_LIMIT` in bytes (default 256kb). */
  readonly bodyLimit: number;
  readonly alerts: {
    readonly backlogThreshold: number;
    readonly cooldownMinutes: number;
  };
  readonly telegram: {
    readonly botToken: string | undefined;
    readonly chatId: string | undefined;
    readonly apiUrl: string;
  };
  readonly email: {
    readonly smtpUrl: string | undefined;
    readonly to: string | undefined;
    readonly from: string;
  };
  readonly sms: {
    readonly provider: SmsProvider | undefined;
    readonly url: string | undefined;
    readonly token: string | undefined;
    readonly login: string | undefined;
    readonly from: string | undefined;
  };
  readonly actions: {
    /**
     * `ACTION_PRIVATE_HOSTS`: hosts and CIDRs rule steps may reach although they are
     * loopback, private or link-local. @default none
     */
    readonly privateHosts: PrivateHosts;
    /**
     * `ACTION_SECRET_ENV`: names of environment variables a step may use as
     * `{"$env": "NAME"}` in a secret field, with their values. Only listed names: a rule
     * author must not be able to read the app's own secrets this way. @default none
     */
    readonly secretEnv: ReadonlyMap<string, string | undefined>;
  };
  readonly metricsToken: string | undefined;
  /**
   * `RETENTION_DAYS` (30) / `RETENTION_FAILED_DAYS` (90): events in a final status older
   * than this many days (failed ones: the second figure) are pruned; 0 keeps them all. A
   * portal's own setting wins (server/retention/policy.ts).
   */
  readonly retention: { readonly days: number; readonly failedDays: number };
  /**
   * `SHUTDOWN_DELAY_SECONDS`: after SIGTERM, `/readyz` answers 503 for this long while
   * requests are still served, so a load balancer stops sending before the server closes.
   * @default 0
   */
  readonly shutdownDelaySeconds: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** Secrets generated into DATA_DIR on a zero-config start (see secrets.ts). */
export interface GeneratedSecrets {
  readonly sessionSecret: string;
  readonly tokenEncryptionKey: string;
}

export const DEFAULT_OAUTH_SERVERS = ['https://oauth.bitrix.info', 'https://oauth.bitrix24.tech'];

/**
 * Which OAuth server a portal uses when its install POST names none: Russian-zone portals
 * (.ru, .by, .kz) are served by oauth.bitrix24.tech, every other by oauth.bitrix.info
 * (DOCS-RU:settings/oauth/auto-renewal.md; PHPSDK DefaultOAuthServerUrl east()/west()).
 */
export const DEFAULT_OAUTH_ZONE_SERVERS =
  'ru=https://oauth.bitrix24.tech,by=https://oauth.bitrix24.tech,kz=https://oauth.bitrix24.tech,' +
  '*=https://oauth.bitrix.info';

/** Bitrix24 cloud domains. */
export const DEFAULT_PORTAL_HOSTS = [
  'bitrix24.com',
  'bitrix24.ru',
  'bitrix24.de',
  'bitrix24.eu',
  'bitrix24.by',
  'bitrix24.kz',
  'bitrix24.ua',
  'bitrix24.es',
  'bitrix24.fr',
  'bitrix24.it',
  'bitrix24.pl',
  'bitrix24.uk',
  'bitrix24.in',
  'bitrix24.com.br',
  'bitrix24.com.tr',
  'bitrix24.cn',
  'bitrix24.jp',
  'bitrix24.vn',
  'bitrix24.id',
  'bitrix24.co',
  'bitrix24.com.mx',
  'bitrix24.kr',
].map((d) => `*.${d}`);

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Parses `256kb`, `1mb`, `1024` into bytes. */
export function parseByteSize(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit === 'gb' ? 1024 ** 3 : unit === 'mb' ? 1024 ** 2 : unit === 'kb' ? 1024 : 1;
  return Math.floor(n * mult);
}

function list(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  return value
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Decodes a 32-byte key given as 64 hex chars or base64. */
export function decodeKey(value: string): Buffer | undefined {
  const v = value.trim();
  if (/^[0-9a-f]{64}$/i.test(v)) return Buffer.from(v, 'hex');
  const b = Buffer.from(v, 'base64');
  return b.length === 32 ? b : undefined;
}

/**
 * Validates the environment once and returns a frozen config. Every problem is collected and
 * reported together in one ConfigError.
 */
export function loadConfig(env: Env, generated?: GeneratedSecrets, cwd = process.cwd()): Config {
  const problems: string[] = [];

  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return def;
    }
    return n;
  };
  const share = (name: string, def: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0 || n > 1) {
      problems.push(`${name} must be a number above 0 and at most 1, got "${raw}"`);
      return def;
    }
    return n;
  };
  const url = (name: string, def: string | undefined): string | undefined => {
    const raw = env[name]?.trim() || def;
    if (raw === undefined) return undefined;
    try {
      const u = new URL(raw);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      return raw.replace(/\/+$/, '');
    } catch {
      problems.push(`${name} must be an http(s) URL, got "${raw}"`);
      return def;
    }
  };

  const port = int('PORT', 3000, 0, 65535);
  const host = env.HOST?.trim() || '0.0.0.0';
  const appUrl = url('APP_URL', `http://localhost:${port}`) ?? `http://localhost:${port}`;
  const dataDir = path.resolve(cwd, env.DATA_DIR?.trim() || './data');

  let database: Config['database'] = {
    client: 'sqlite',
    filename: path.join(dataDir, 'b24hooks.sqlite'),
  };
  const dbUrl = env.DATABASE_URL?.trim();
  if (dbUrl) {
    if (/^postgres(ql)?:\/\//i.test(dbUrl)) database = { client: 'pg', connectionString: dbUrl };
    else if (/^sqlite:/i.test(dbUrl)) {
      const file = dbUrl.replace(/^sqlite:(\/\/)?/i, '');
      database = { client: 'sqlite', filename: file ? path.resolve(cwd, file) : database.filename };
    } else problems.push(`DATABASE_URL must start with sqlite: or postgres://, got another scheme`);
  }

  const oauthServers: string[] = [];
  for (const s of list(env.B24_OAUTH_SERVERS) ?? DEFAULT_OAUTH_SERVERS) {
    try {
      const u = new URL(s);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
      oauthServers.push(u.origin);
    } catch {
      problems.push(`B24_OAUTH_SERVERS: "${s}" is not a URL (expected https://host)`);
    }
  }
  const portalHosts: HostPattern[] = [];
  for (const p of list(env.B24_PORTAL_HOSTS) ?? DEFAULT_PORTAL_HOSTS) {
    try {
      portalHosts.push(parseHostPattern(p));
    } catch (e) {
      problems.push(`B24_PORTAL_HOSTS: ${(e as Error).message}`);
    }
  }
  const oauthZoneServers: Array<{ zone: string; origin: string }> = [];
  for (const entry of list(env.B24_OAUTH_ZONE_SERVERS) ?? list(DEFAULT_OAUTH_ZONE_SERVERS)!) {
    const eq = entry.indexOf('=');
    const zone = entry.slice(0, eq).trim().toLowerCase().replace(/^\./, '');
    let origin = '';
    try {
      const u = new URL(entry.slice(eq + 1));
      if (u.protocol === 'https:' || u.protocol === 'http:') origin = u.origin;
    } catch {
      origin = '';
    }
    if (eq <= 0 || !/^(\*|[a-z0-9.-]+)$/.test(zone) || !origin) {
      problems.push(
        `B24_OAUTH_ZONE_SERVERS: "${entry}" is not zone=URL (e.g. ru=https://oauth.bitrix24.tech)`,
      );
    } else oauthZoneServers.push({ zone, origin });
  }
  const insecureRaw = (env.B24_INSECURE_DEV_INSTALL ?? '0').trim().toLowerCase();
  if (!['1', '0', 'true', 'false', 'on', 'off', ''].includes(insecureRaw)) {
    problems.push(`B24_INSECURE_DEV_INSTALL: expected 1 or 0, got "${insecureRaw}"`);
  }
  const events = list(env.B24_EVENTS)?.map((e) => e.toUpperCase());
  for (const e of events ?? []) {
    if (!/^[A-Z0-9_]+$/.test(e)) problems.push(`B24_EVENTS: "${e}" is not an event name`);
  }

  const offlineRaw = (env.B24_OFFLINE_EVENTS ?? 'on').trim().toLowerCase();
  if (!['on', 'off', 'true', 'false', '1', '0'].includes(offlineRaw)) {
    problems.push(`B24_OFFLINE_EVENTS: expected on or off, got "${offlineRaw}"`);
  }

  const ipAllowlist = list(env.B24_IP_ALLOWLIST) ?? [];
  for (const entry of ipAllowlist) {
    if (entry.toLowerCase() === 'bitrix24') continue;
    if (!/^[0-9a-f.:]+(\/\d{1,3})?$/i.test(entry)) {
      problems.push(`B24_IP_ALLOWLIST: "${entry}" is not a CIDR or "bitrix24"`);
    }
  }

  let trustProxy: Config['trustProxy'] = false;
  const tp = env.TRUST_PROXY?.trim();
  if (tp) {
    if (tp === 'true') trustProxy = true;
    else if (tp === 'false') trustProxy = false;
    else if (/^\d+$/.test(tp)) trustProxy = Number(tp);
    else trustProxy = tp;
  }

  const sessionSecret = env.SESSION_SECRET?.trim() || generated?.sessionSecret || '';
  if (sessionSecret.length < 16) {
    problems.push('SESSION_SECRET must be at least 16 characters (or leave it unset to generate)');
  }
  let tokenEncryptionKey: Buffer = Buffer.alloc(0);
  const rawKey = env.TOKEN_ENCRYPTION_KEY?.trim() || generated?.tokenEncryptionKey;
  const key = rawKey ? decodeKey(rawKey) : undefined;
  if (!key) problems.push('TOKEN_ENCRYPTION_KEY must be 32 bytes as 64 hex characters or base64');
  else tokenEncryptionKey = key;

  let bodyLimit = 256 * 1024;
  if (env.BODY_LIMIT?.trim()) {
    const b = parseByteSize(env.BODY_LIMIT);
    if (b === undefined || b < 1024 || b > 64 * 1024 * 1024) {
      problems.push(
        `BODY_LIMIT must be a size from 1kb to 64mb (e.g. 256kb), got "${env.BODY_LIMIT}"`,
      );
    } else bodyLimit = b;
  }

  const logLevel = (env.LOG_LEVEL?.trim().toLowerCase() || 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);
  }

  const smtpUrl = env.SMTP_URL?.trim() || undefined;
  if (smtpUrl && !/^smtps?:\/\//i.test(smtpUrl)) {
    problems.push('SMTP_URL must look like smtp://user:pass@host:port');
  }
  const smsProvider = env.SMS_PROVIDER?.trim().toLowerCase() || undefined;
  if (smsProvider && !['generic', 'twilio', 'smsru'].includes(smsProvider)) {
    problems.push(`SMS_PROVIDER must be generic, twilio or smsru, got "${env.SMS_PROVIDER}"`);
  }

  let privateHosts: PrivateHosts = { hosts: [], ranges: [] };
  try {
    privateHosts = parsePrivateHosts(list(env.ACTION_PRIVATE_HOSTS) ?? []);
  } catch (e) {
    problems.push(`ACTION_PRIVATE_HOSTS: ${(e as Error).message}`);
  }
  const secretEnv = new Map<string, string | undefined>();
  for (const name of list(env.ACTION_SECRET_ENV) ?? []) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      problems.push(`ACTION_SECRET_ENV: "${name}" is not an environment variable name`);
    } else secretEnv.set(name, env[name]);
  }

  const config: Config = {
    port,
    host,
    appUrl,
    dataDir,
    database,
    b24: {
      clientId: env.B24_CLIENT_ID?.trim() || undefined,
      clientSecret: env.B24_CLIENT_SECRET?.trim() || undefined,
      oauthServers,
      oauthZoneServers,
      appCode: env.B24_APP_CODE?.trim() || env.B24_CLIENT_ID?.trim() || undefined,
      insecureDevInstall: ['1', 'true', 'on'].includes(insecureRaw),
      portalHosts,
      events,
      offlineEvents: !['off', 'false', '0'].includes(offlineRaw),
      offlineMinTimeoutSec: int('B24_OFFLINE_MIN_TIMEOUT', 60, 60, 86_400),
      jsSdkUrl: url('B24_JS_SDK_URL', 'https://api.bitrix24.com/api/v1/') ?? '',
    },
    ipAllowlist,
    ipListUrls: list(env.B24_IP_LIST_URLS),
    trustProxy,
    sessionSecret,
    tokenEncryptionKey,
    worker: {
      concurrency: int('WORKER_CONCURRENCY', 4, 1, 256),
      portalShare: share('WORKER_PORTAL_SHARE', 0.5),
      destinationConcurrency: int('DESTINATION_CONCURRENCY', 4, 1, 256),
      maxAttempts: int('MAX_ATTEMPTS', 10, 1, 1000),
      retryBaseSeconds: int('RETRY_BASE_SECONDS', 10, 0, 86400),
    },
    bodyLimit,
    alerts: {
      backlogThreshold: int('ALERT_BACKLOG_THRESHOLD', 50, 1, 100_000_000),
      cooldownMinutes: int('ALERT_COOLDOWN_MINUTES', 15, 1, 10080),
    },
    telegram: {
      botToken: env.TELEGRAM_BOT_TOKEN?.trim() || undefined,
      chatId: env.TELEGRAM_CHAT_ID?.trim() || undefined,
      apiUrl: url('TELEGRAM_API_URL', 'https://api.telegram.org') ?? 'https://api.telegram.org',
    },
    email: {
      smtpUrl,
      to: env.ALERT_EMAIL_TO?.trim() || undefined,
      from: env.ALERT_EMAIL_FROM?.trim() || 'b24hooks <b24hooks@localhost>',
    },
    sms: {
      provider: smsProvider as SmsProvider | undefined,
      url: url('SMS_URL', undefined),
      token: env.SMS_TOKEN?.trim() || undefined,
      login: env.SMS_LOGIN?.trim() || undefined,
      from: env.SMS_FROM?.trim() || undefined,
    },
    actions: { privateHosts, secretEnv },
    metricsToken: env.METRICS_TOKEN?.trim() || undefined,
    retention: {
      days: int('RETENTION_DAYS', 30, 0, 36500),
      failedDays: int('RETENTION_FAILED_DAYS', 90, 0, 36500),
    },
    shutdownDelaySeconds: int('SHUTDOWN_DELAY_SECONDS', 0, 0, 300),
    logLevel,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
