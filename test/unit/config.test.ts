import { describe, expect, it } from '@jest/globals';
import { ConfigError } from '../../server/lib/errors.js';
import { loadConfig, parseByteSize } from '../../server/config.js';
import { zoneServerEndpoint } from '../../server/bitrix/hosts.js';
import {
  channelWarnings,
  secretEnvWarnings,
  oauthZoneWarnings,
  publicDeploymentWarnings,
  unknownEventWarnings,
} from '../../server/config/warnings.js';
import { SUPPORTED_EVENTS } from '../../server/ui/supported-events.js';

const KEY = 'a'.repeat(64);
const base = { SESSION_SECRET: 'x'.repeat(20), TOKEN_ENCRYPTION_KEY: KEY };

describe('loadConfig', () => {
  it('gives the contract defaults when only the secrets are set', () => {
    const c = loadConfig(base, undefined, '/srv/app');
    expect(c.port).toBe(3000);
    expect(c.host).toBe('0.0.0.0');
    expect(c.appUrl).toBe('http://localhost:3000');
    expect(c.dataDir).toBe('/srv/app/data');
    expect(c.database).toEqual({ client: 'sqlite', filename: '/srv/app/data/b24hooks.sqlite' });
    expect(c.b24.oauthServers).toEqual([
      'https://oauth.bitrix.info',
      'https://oauth.bitrix24.tech',
    ]);
    expect(c.worker).toEqual({
      concurrency: 4,
      portalShare: 0.5,
      destinationConcurrency: 4,
      maxAttempts: 10,
      retryBaseSeconds: 10,
      settleMs: 1000,
      stepTimeoutMaxMs: 60_000,
      portalStepCharsPerSecond: 2 * 1024 * 1024,
      portalMessagesPerDay: 1000,
    });
    expect(c.bodyLimit).toBe(256 * 1024);
    expect(c.alerts).toEqual({ backlogThreshold: 50, cooldownMinutes: 15 });
    expect(c.telegram.apiUrl).toBe('https://api.telegram.org');
    expect(c.logLevel).toBe('info');
    expect(c.ipAllowlist).toEqual([]);
    expect(c.b24.events).toBeUndefined();
    expect(c.retention).toEqual({ days: 30, failedDays: 90 });
  });

  it('reads RETENTION_DAYS and RETENTION_FAILED_DAYS, 0 keeping everything', () => {
    const c = loadConfig({ ...base, RETENTION_DAYS: '0', RETENTION_FAILED_DAYS: '365' });
    expect(c.retention).toEqual({ days: 0, failedDays: 365 });
    // Unset, the failed events' figure keeps them at least as long as the others: 0 with 0
    // (RETENTION_DAYS=0 had still pruned failed events after 90 days), 120 with 120.
    const figures = (env: Record<string, string>) => loadConfig({ ...base, ...env }).retention;
    expect(figures({})).toEqual({ days: 30, failedDays: 90 });
    expect(figures({ RETENTION_DAYS: '0' })).toEqual({ days: 0, failedDays: 0 });
    expect(figures({ RETENTION_DAYS: '120' })).toEqual({ days: 120, failedDays: 120 });
    expect(figures({ RETENTION_DAYS: '120', RETENTION_FAILED_DAYS: '7' })).toEqual({
      days: 120,
      failedDays: 7,
    });
    expect(() => loadConfig({ ...base, RETENTION_DAYS: '-1', RETENTION_FAILED_DAYS: 'x' })).toThrow(
      /RETENTION_DAYS must be an integer from 0 to 36500, got "-1".*RETENTION_FAILED_DAYS/s,
    );
  });

  it('refuses RETRY_BASE_SECONDS=0: every retry of a failing destination at once', () => {
    // 0 doubled stays 0: MAX_ATTEMPTS requests in a burst at a target that just failed.
    expect(() => loadConfig({ ...base, RETRY_BASE_SECONDS: '0' })).toThrow(
      /RETRY_BASE_SECONDS must be an integer from 1 to 86400, got "0"/,
    );
    expect(loadConfig({ ...base, RETRY_BASE_SECONDS: '1' }).worker.retryBaseSeconds).toBe(1);
  });

  it('takes counts in digits only: "1e3" or "0x10" is refused, not read as 1000 or 16', () => {
    expect(() =>
      loadConfig({ ...base, RETENTION_DAYS: '1e3', WORKER_CONCURRENCY: '0x10' }),
    ).toThrow(
      /WORKER_CONCURRENCY must be an integer from 1 to 256, got "0x10".*RETENTION_DAYS must be an integer from 0 to 36500, got "1e3"/s,
    );
    // Control: the same figures in digits, with spaces around them.
    const c = loadConfig({ ...base, RETENTION_DAYS: ' 1000 ', WORKER_CONCURRENCY: '16' });
    expect(c.retention.days).toBe(1000);
  });

  it('refuses one of B24_CLIENT_ID and B24_CLIENT_SECRET without the other, naming the missing one', () => {
    expect(() => loadConfig({ ...base, B24_CLIENT_ID: 'local.1', B24_CLIENT_SECRET: '' })).toThrow(
      'B24_CLIENT_SECRET is not set but B24_CLIENT_ID is: set both (from the Bitrix24 application form), or neither',
    );
    expect(() => loadConfig({ ...base, B24_CLIENT_SECRET: 's' })).toThrow(
      'B24_CLIENT_ID is not set but B24_CLIENT_SECRET is',
    );
    expect(loadConfig({ ...base }).b24.clientId).toBeUndefined();
  });

  it('builds APP_URL from PORT when APP_URL is not set', () => {
    expect(loadConfig({ ...base, PORT: '8080' }).appUrl).toBe('http://localhost:8080');
  });

  it('accepts every documented variable', () => {
    const c = loadConfig({
      ...base,
      PORT: '4000',
      HOST: '127.0.0.1',
      APP_URL: 'https://hooks.example.org/',
      DATABASE_URL: 'postgres://u:p@localhost/db',
      B24_CLIENT_ID: 'local.1',
      B24_CLIENT_SECRET: 's',
      B24_OAUTH_SERVERS: 'http://127.0.0.1:9000',
      B24_PORTAL_HOSTS: '127.0.0.1:*, crm.example.org',
      B24_EVENTS: 'onCrmDealAdd,ONCRMLEADADD',
      B24_IP_ALLOWLIST: '10.0.0.0/8,bitrix24',
      TRUST_PROXY: '1',
      WORKER_CONCURRENCY: '8',
      MAX_ATTEMPTS: '3',
      RETRY_BASE_SECONDS: '1',
      BODY_LIMIT: '1mb',
      ALERT_BACKLOG_THRESHOLD: '5',
      ALERT_COOLDOWN_MINUTES: '2',
      TELEGRAM_BOT_TOKEN: 't',
      TELEGRAM_CHAT_ID: '42',
      TELEGRAM_API_URL: 'http://127.0.0.1:9001',
      SMTP_URL: 'smtp://u:p@127.0.0.1:2525',
      ALERT_EMAIL_TO: 'ops@example.org',
      METRICS_TOKEN: 'm',
      LOG_LEVEL: 'warn',
    });
    expect(c.appUrl).toBe('https://hooks.example.org');
    expect(c.database).toEqual({ client: 'pg', connectionString: 'postgres://u:p@localhost/db' });
    expect(c.b24.oauthServers).toEqual(['http://127.0.0.1:9000']);
    expect(c.b24.portalHosts.map((p) => p.source)).toEqual(['127.0.0.1:*', 'crm.example.org']);
    expect(c.b24.events).toEqual(['ONCRMDEALADD', 'ONCRMLEADADD']);
    expect(c.trustProxy).toBe(1);
    expect(c.bodyLimit).toBe(1024 * 1024);
    expect(c.worker.maxAttempts).toBe(3);
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: 'abc',
        WORKER_CONCURRENCY: '0',
        WORKER_PORTAL_SHARE: '1.5',
        BODY_LIMIT: 'huge',
        LOG_LEVEL: 'loud',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of [
      'PORT',
      'WORKER_CONCURRENCY',
      'WORKER_PORTAL_SHARE',
      'BODY_LIMIT',
      'LOG_LEVEL',
      'SESSION_SECRET',
      'TOKEN_ENCRYPTION_KEY',
    ]) {
      expect(problems).toContain(name);
    }
  });

  it('picks the zone’s OAuth server for an install without SERVER_ENDPOINT', () => {
    const c = loadConfig(base);
    expect(zoneServerEndpoint(c, 'acme.bitrix24.com')).toBe('https://oauth.bitrix.info/rest/');
    expect(zoneServerEndpoint(c, 'acme.bitrix24.de')).toBe('https://oauth.bitrix.info/rest/');
    for (const d of ['acme.bitrix24.ru', 'acme.bitrix24.by', 'acme.bitrix24.kz:443']) {
      expect(zoneServerEndpoint(c, d)).toBe('https://oauth.bitrix24.tech/rest/');
    }
    // Both defaults are in the default allowlist.
    for (const z of c.b24.oauthZoneServers) expect(c.b24.oauthServers).toContain(z.origin);
    const mapped = loadConfig({ ...base, B24_OAUTH_ZONE_SERVERS: '*=http://127.0.0.1:9000' });
    expect(zoneServerEndpoint(mapped, '127.0.0.1:8080')).toBe('http://127.0.0.1:9000/rest/');
  });

  it('keeps insecure development installs off unless asked for by name, and checks the zone table', () => {
    expect(loadConfig(base).b24.insecureDevInstall).toBe(false);
    expect(loadConfig({ ...base, B24_INSECURE_DEV_INSTALL: '1' }).b24.insecureDevInstall).toBe(
      true,
    );
    const app = { ...base, B24_CLIENT_ID: 'local.9', B24_CLIENT_SECRET: 's' };
    expect(loadConfig(app).b24.appCode).toBe('local.9');
    expect(loadConfig({ ...app, B24_APP_CODE: 'vendor.app' }).b24.appCode).toBe('vendor.app');
    expect(() =>
      loadConfig({ ...base, B24_OAUTH_ZONE_SERVERS: 'ru', B24_INSECURE_DEV_INSTALL: 'maybe' }),
    ).toThrow(
      /B24_OAUTH_ZONE_SERVERS[\s\S]*B24_INSECURE_DEV_INSTALL|B24_INSECURE_DEV_INSTALL[\s\S]*B24_OAUTH_ZONE_SERVERS/,
    );
  });

  it('uses generated secrets when the environment has none', () => {
    const c = loadConfig({}, { sessionSecret: 's'.repeat(32), tokenEncryptionKey: KEY });
    expect(c.sessionSecret).toBe('s'.repeat(32));
    expect(c.tokenEncryptionKey.toString('hex')).toBe(KEY);
  });

  it('refuses a B24_IP_ALLOWLIST entry that is not an address or a CIDR', () => {
    for (const entry of ['10.0.0.0/33', '127.0.0.1/99', '300.0.0.1', 'fe80::1::2']) {
      expect(() => loadConfig({ ...base, B24_IP_ALLOWLIST: `127.0.0.1/8,${entry}` })).toThrow(
        `B24_IP_ALLOWLIST: "${entry}" is not a CIDR`,
      );
    }
    const c = loadConfig({
      ...base,
      B24_IP_ALLOWLIST: '127.0.0.1, 10.0.0.0/8,2001:db8::/32,bitrix24',
    });
    expect(c.ipAllowlist).toEqual(['127.0.0.1', '10.0.0.0/8', '2001:db8::/32', 'bitrix24']);
  });

  it('refuses a B24_IP_LIST_URLS entry that is not an http(s) URL', () => {
    for (const u of ['notaurl', 'ftp://lists.example/ips.txt']) {
      expect(() => loadConfig({ ...base, B24_IP_LIST_URLS: u })).toThrow(
        `B24_IP_LIST_URLS: "${u}" is not an http(s) URL`,
      );
    }
    const urls = 'https://a.example/ips.txt,http://127.0.0.1:8080/list';
    expect(loadConfig({ ...base, B24_IP_LIST_URLS: urls }).ipListUrls).toEqual(urls.split(','));
  });

  it('refuses an ACTION_PRIVATE_HOSTS entry of digits and dots that is no IPv4 address', () => {
    for (const e of ['300.1.1.1', '1.2.3.4.5']) {
      expect(() => loadConfig({ ...base, ACTION_PRIVATE_HOSTS: e })).toThrow(
        `ACTION_PRIVATE_HOSTS: "${e}" is not a valid IPv4 address`,
      );
    }
    expect(() =>
      loadConfig({ ...base, ACTION_PRIVATE_HOSTS: '10.1.1.1,erp.internal,10.0.0.0/8' }),
    ).not.toThrow();
  });

  it('binds an ACTION_SECRET_ENV name to the one origin after @, and says unbound names at start', () => {
    const c = loadConfig({
      ...base,
      ACTION_SECRET_ENV: 'ERP_TOKEN@https://erp.example/,CRM_KEY@http://crm.example:8080,OPEN',
      ERP_TOKEN: 'e',
    });
    expect(c.actions.secretEnv.get('ERP_TOKEN')).toBe('e');
    expect([...c.actions.secretEnvOrigins]).toEqual([
      ['ERP_TOKEN', 'https://erp.example'],
      ['CRM_KEY', 'http://crm.example:8080'],
    ]);
    expect(secretEnvWarnings(c)).toEqual([
      "ACTION_SECRET_ENV: OPEN may be sent by any portal's rules to any address; write NAME@https://host (the one origin it may go to), e.g. OPEN@https://erp.example.",
    ]);
    for (const bad of [
      'https://erp.example/api',
      'ftp://erp.example',
      'erp.example',
      'https://u:p@erp.example',
      'https://erp.example/?x',
    ]) {
      expect(() => loadConfig({ ...base, ACTION_SECRET_ENV: `ERP_TOKEN@${bad}` })).toThrow(
        `ACTION_SECRET_ENV: "ERP_TOKEN@${bad}": after @ comes the one origin`,
      );
    }
    expect(
      secretEnvWarnings(loadConfig({ ...base, ACTION_SECRET_ENV: 'A@https://a.example' })),
    ).toEqual([]);
    // Listed twice with two origins, the last one silently won.
    expect(() =>
      loadConfig({
        ...base,
        ACTION_SECRET_ENV: 'ERP_TOKEN@https://a.example,ERP_TOKEN@https://b.example',
      }),
    ).toThrow(
      'ACTION_SECRET_ENV: ERP_TOKEN is bound to https://a.example and to https://b.example',
    );
  });

  it('refuses a TRUST_PROXY that names no address, instead of crashing on it later', () => {
    for (const tp of ['garbage', '10.0.0.0/33', '10.0.0.1,nonsense']) {
      expect(() => loadConfig({ ...base, TRUST_PROXY: tp })).toThrow(`TRUST_PROXY must be`);
    }
    expect(loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/8, loopback' }).trustProxy).toBe(
      '10.0.0.0/8, loopback',
    );
  });

  it('refuses an SMTP_URL that does not parse, without repeating it', () => {
    for (const url of [
      'smtp://user:pa#ssword@mail.example.org:587',
      'smtp://user:password@:::587',
    ]) {
      try {
        loadConfig({ ...base, SMTP_URL: url });
        throw new Error(`expected a ConfigError for ${url}`);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as Error).message).toContain('SMTP_URL');
        expect((e as Error).message).not.toContain('hunter');
      }
    }
    // Special characters percent-encoded: accepted.
    const c = loadConfig({ ...base, SMTP_URL: 'smtp://user:pa%23ss%40word@mail.example.org:587' });
    expect(c.email.smtpUrl).toBe('smtp://user:pa%23ss%40word@mail.example.org:587');
  });

  /**
   * A `?`, `#` or `/` in the user name ends the host early: the URL still parses, with the
   * user name's first part as the host and the password in the query, so every message went
   * to a host that does not exist.
   */
  it('refuses an SMTP_URL whose user name ends the host early, without repeating it', () => {
    for (const url of [
      'smtp://ma?il:hunter2@mail.example.org:587',
      'smtp://ma#il:hunter2@mail.example.org:587',
      'smtp://ma/il:hunter2@mail.example.org:587',
    ]) {
      try {
        loadConfig({ ...base, SMTP_URL: url });
        throw new Error(`expected a ConfigError for ${url}`);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as Error).message).toContain('SMTP_URL');
        expect((e as Error).message).toContain('%3F');
        expect((e as Error).message).not.toContain('hunter');
      }
    }
    // nodemailer's own query options stay possible.
    const tls = 'smtp://user:pass@mail.example.org:587?tls.rejectUnauthorized=false';
    expect(loadConfig({ ...base, SMTP_URL: tls }).email.smtpUrl).toBe(tls);
  });

  /**
   * A typo in B24_EVENTS used to start the server silently: every install then asked the
   * portal to bind a name it does not know, and the event never arrived. A name the app
   * does not know and is no typo of one it knows (Bitrix24 adds events) starts with a warning.
   */
  it('refuses a B24_EVENTS typo of a known event, naming both, and warns of an unknown name', () => {
    try {
      loadConfig({ ...base, B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDTE,ONCRMPRODUCTPROPERTYADD' });
      throw new Error('expected a ConfigError');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const message = (e as Error).message;
      expect(message).toContain(
        'B24_EVENTS: "ONCRMDEALUPDTE" is not a Bitrix24 event; did you mean ONCRMDEALUPDATE?',
      );
      expect(message).not.toContain('"ONCRMDEALADD"');
      expect(message).not.toContain('ONCRMPRODUCTPROPERTYADD');
    }
    const config = loadConfig({ ...base, B24_EVENTS: 'ONCRMDEALADD,ONCRMPRODUCTPROPERTYADD' });
    expect(config.b24.events).toEqual(['ONCRMDEALADD', 'ONCRMPRODUCTPROPERTYADD']);
    const [warning, ...more] = unknownEventWarnings(config);
    expect(more).toEqual([]);
    expect(warning).toMatch(/^B24_EVENTS: ONCRMPRODUCTPROPERTYADD is not among/);
    // Control: the known names warn of nothing.
    expect(unknownEventWarnings(loadConfig({ ...base, B24_EVENTS: 'ONCRMDEALADD' }))).toEqual([]);
    const names = [
      ...SUPPORTED_EVENTS.map((e) => e.name),
      'ONCRMDYNAMICITEMUPDATE',
      'onCrmDynamicItemAdd_128',
      'ONCRMQUOTEUPDATE',
      'ONTASKCOMMENTADD',
    ];
    expect(loadConfig({ ...base, B24_EVENTS: names.join(',') }).b24.events).toEqual(
      names.map((n) => n.toUpperCase()),
    );
  });

  it('never repeats a secret value in its error message', () => {
    try {
      loadConfig({ SESSION_SECRET: 'short', TOKEN_ENCRYPTION_KEY: 'not-a-key-supersecret' });
      throw new Error('expected a ConfigError');
    } catch (e) {
      expect((e as Error).message).not.toContain('supersecret');
    }
  });
});

describe('parseByteSize', () => {
  it('understands plain bytes and kb/mb units', () => {
    expect(parseByteSize('1024')).toBe(1024);
    expect(parseByteSize('256kb')).toBe(262144);
    expect(parseByteSize('2MB')).toBe(2 * 1024 * 1024);
    expect(parseByteSize('lots')).toBeUndefined();
  });
});

describe('warnings for a public address', () => {
  const warnings = (env: Record<string, string>) =>
    publicDeploymentWarnings(loadConfig({ ...base, ...env }, undefined, '/srv/app'));

  it('names an open /metrics and an open events URL on a public APP_URL', () => {
    const got = warnings({ APP_URL: 'https://hooks.example.com' });
    expect(got).toHaveLength(2);
    expect(got[0]).toMatch(/^METRICS_TOKEN is not set/);
    expect(got[1]).toMatch(/^B24_IP_ALLOWLIST is not set/);
    expect(
      warnings({
        APP_URL: 'https://hooks.example.com',
        METRICS_TOKEN: 'm'.repeat(24),
        B24_IP_ALLOWLIST: '10.0.0.0/8',
      }),
    ).toEqual([]);
  });

  it('names an APP_URL host that Bitrix24 would refuse to bind handlers on', () => {
    const safe = { METRICS_TOKEN: 'm'.repeat(24), B24_IP_ALLOWLIST: 'bitrix24' };
    for (const APP_URL of ['https://hooks:3000', 'https://[2001:db8::1]', 'https://.example']) {
      const got = warnings({ ...safe, APP_URL });
      expect(got).toHaveLength(1);
      expect(got[0]).toMatch(/^APP_URL's host ".*" has no dot: Bitrix24 refuses handler URLs/);
    }
    // Control: a DNS name with a dot, and an IPv4 address, are bound.
    for (const APP_URL of ['https://hooks.example.com', 'https://203.0.113.7:8443']) {
      expect(warnings({ ...safe, APP_URL })).toEqual([]);
    }
  });

  it('says nothing on this machine', () => {
    for (const APP_URL of ['http://localhost:3000', 'http://127.0.0.1:8080', 'http://[::1]:3000']) {
      expect(warnings({ APP_URL })).toEqual([]);
    }
  });
});

describe('channels configured by half', () => {
  const warn = (env: Record<string, string>) => channelWarnings(loadConfig({ ...base, ...env }));

  it('names each, where the start went on without a word and the first alert was dropped', () => {
    expect(warn({ TELEGRAM_CHAT_ID: '-1001' })).toEqual([
      'TELEGRAM_CHAT_ID is set without TELEGRAM_BOT_TOKEN: no alert goes to Telegram; set the bot token too.',
    ]);
    expect(warn({ ALERT_EMAIL_TO: 'ops@example.com' })).toEqual([
      'ALERT_EMAIL_TO is set without SMTP_URL: no alert goes by e-mail; set SMTP_URL too.',
    ]);
    expect(warn({ ALERT_EMAIL_TO: 'not-an-email', SMTP_URL: 'smtp://127.0.0.1:25' })).toEqual([
      'ALERT_EMAIL_TO: "not-an-email" is not an e-mail address; alerts are not sent to it.',
    ]);
    expect(warn({ SMS_PROVIDER: 'generic' })[0]).toMatch(/^SMS_PROVIDER=generic needs SMS_URL/);
    expect(warn({ SMS_PROVIDER: 'twilio', SMS_TOKEN: 't' })[0]).toMatch(
      /^SMS_PROVIDER=twilio needs SMS_LOGIN/,
    );
    expect(warn({ SMS_PROVIDER: 'smsru' })[0]).toMatch(/^SMS_PROVIDER=smsru needs SMS_TOKEN/);
    // Control: whole channels, and none at all, warn of nothing.
    expect(warn({})).toEqual([]);
    expect(
      warn({
        TELEGRAM_CHAT_ID: '-1001',
        TELEGRAM_BOT_TOKEN: '1:abc',
        ALERT_EMAIL_TO: 'ops@example.com, sales@example.com',
        SMTP_URL: 'smtp://127.0.0.1:25',
        SMS_PROVIDER: 'twilio',
        SMS_LOGIN: 'AC1',
        SMS_TOKEN: 't',
        SMS_FROM: '+1555',
      }),
    ).toEqual([]);
  });
});

describe('B24_OAUTH_ZONE_SERVERS', () => {
  it('names a zone server that B24_OAUTH_SERVERS does not trust, as the README says it must', () => {
    const zoneWarnings = (env: Record<string, string>) =>
      oauthZoneWarnings(loadConfig({ ...base, ...env }));
    expect(zoneWarnings({ B24_OAUTH_ZONE_SERVERS: 'ru=https://other.example' })).toEqual([
      'B24_OAUTH_ZONE_SERVERS: https://other.example (zone ru) is not in B24_OAUTH_SERVERS: every install of that zone is refused; add it there.',
    ]);
    // Control: trusted, nothing; the defaults trust each other.
    expect(
      zoneWarnings({
        B24_OAUTH_SERVERS: 'https://other.example,https://oauth.bitrix.info',
        B24_OAUTH_ZONE_SERVERS: 'ru=https://other.example,*=https://oauth.bitrix.info',
      }),
    ).toEqual([]);
    expect(zoneWarnings({})).toEqual([]);
  });
});
