import type { HostPattern } from '../lib/host-pattern.js';
import type { PrivateHosts } from '../lib/address-policy.js';

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
    /**
     * `B24_PORTAL_HOSTS` holds `*.bitrix24.*`: a `name.bitrix24.<zone>` host outside the
     * listed zones may be called once an OAuth server of `oauthServers` names it as the
     * portal's address. In the default. @default true
     */
    readonly unlistedCloudZones: boolean;
    /** `B24_EVENTS`: events bound at install (default: manifest.json `events`). */
    readonly events: readonly string[] | undefined;
    /**
     * `B24_OFFLINE_EVENTS`: also bind the chosen events as offline events and drain them
     * (loss recovery). @default true
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
  /** The key came from DATA_DIR/secrets.json (TOKEN_ENCRYPTION_KEY unset). */
  readonly tokenKeyFromFile?: boolean;
  readonly worker: {
    readonly concurrency: number;
    /**
     * `WORKER_PORTAL_SHARE`: the largest share of the workers one portal may hold while other
     * portals have due jobs; alone, a portal may use them all. @default 0.5
     */
    readonly portalShare: number;
    /**
     * `DESTINATION_CONCURRENCY`: requests at once to one destination (an http host, the
     * Telegram API, the SMTP server, the SMS gateway, a portal's REST endpoint). @default 4
     */
    readonly destinationConcurrency: number;
    readonly maxAttempts: number;
    readonly retryBaseSeconds: number;
    /**
     * `STEP_TIMEOUT_MAX_SECONDS` (in ms): the longest an `http` step waits for its answer,
     * whatever its `timeoutMs`. A step holds a worker slot while it waits, and a portal alone
     * may hold every slot, so this bounds how long another portal's first event can wait
     * behind a target that never answers. @default 60 s
     */
    readonly stepTimeoutMaxMs: number;
    /**
     * `PORTAL_STEP_MB_PER_SECOND` in characters: what one portal's steps may fill in from
     * their templates a second on one instance before its jobs wait (server/queue/
     * step-budget.ts); 0 is off. @default 2 (Mi characters)
     */
    readonly portalStepCharsPerSecond: number;
    /**
     * `EVENT_SETTLE_MS`: how long after its receipt an event whose entity is read (not the
     * app's own events, deletions, or events naming no entity) is first processed. Bitrix24's
     * `ts` has one-second resolution and CRM events carry only the ID, so further changes of
     * the entity within that second arrive as identical deliveries and are only counted; a
     * read at least a second after the receipt sees them all. @default 1000
     */
    readonly settleMs: number;
  };
  /** `BODY_LIMIT` in bytes (default 256kb). */
  readonly bodyLimit: number;
  /**
   * `PORTAL_INTAKE_MB_PER_HOUR` in bytes: what one portal's genuine deliveries may store in an
   * hour, and at once (server/intake/byte-budget.ts); 0 is no limit. @default 256 MB
   */
  readonly portalIntakeBytesPerHour: number;
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
   * `RETENTION_DAYS` (30) / `RETENTION_FAILED_DAYS` (90, and unset never less than the
   * first, 0 with it): events in a final status older than this many days (failed ones: the
   * second figure) are pruned; 0 keeps them all. A portal may set shorter figures of its own
   * (server/retention/policy.ts).
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

/** Secrets generated into DATA_DIR on a zero-config start (see server/secrets.ts). */
export interface GeneratedSecrets {
  readonly sessionSecret: string;
  readonly tokenEncryptionKey: string;
}
