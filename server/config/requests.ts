import ipaddr from 'ipaddr.js';
import proxyaddr from 'proxy-addr';
import { list, type EnvReader } from './reader.js';
import type { Config, GeneratedSecrets } from './types.js';

/** Parses `256kb`, `1mb`, `1024` into bytes. */
export function parseByteSize(value: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit === 'gb' ? 1024 ** 3 : unit === 'mb' ? 1024 ** 2 : unit === 'kb' ? 1024 : 1;
  return Math.floor(n * mult);
}

/** Decodes a 32-byte key given as 64 hex chars or base64. */
export function decodeKey(value: string): Buffer | undefined {
  const v = value.trim();
  if (/^[0-9a-f]{64}$/i.test(v)) return Buffer.from(v, 'hex');
  const b = Buffer.from(v, 'base64');
  return b.length === 32 ? b : undefined;
}

function readsAsRange(entry: string): boolean {
  try {
    if (entry.includes('/')) ipaddr.parseCIDR(entry);
    else ipaddr.parse(entry);
    return true;
  } catch {
    return false;
  }
}

/** Who may post events: `B24_IP_ALLOWLIST`, `B24_IP_LIST_URLS`, `TRUST_PROXY`. */
export function parseSenders(
  r: EnvReader,
): Pick<Config, 'ipAllowlist' | 'ipListUrls' | 'trustProxy'> {
  const ipAllowlist = list(r.env.B24_IP_ALLOWLIST) ?? [];
  for (const entry of ipAllowlist) {
    if (entry.toLowerCase() === 'bitrix24') continue;
    // Parsed as the intake's matcher parses it: an entry it cannot read (10.0.0.0/33,
    // 300.1.2.3) used to pass here and then match nothing, so every delivery got 403.
    if (!/^[0-9a-f.:]+(\/\d{1,3})?$/i.test(entry) || !readsAsRange(entry)) {
      r.problems.push(`B24_IP_ALLOWLIST: "${entry}" is not a CIDR or "bitrix24"`);
    }
  }
  let trustProxy: Config['trustProxy'] = false;
  const tp = r.env.TRUST_PROXY?.trim();
  if (tp) {
    if (tp === 'true') trustProxy = true;
    else if (tp === 'false') trustProxy = false;
    else if (/^\d+$/.test(tp)) trustProxy = Number(tp);
    else {
      trustProxy = tp;
      try {
        proxyaddr.compile(tp.split(',').map((s) => s.trim()));
      } catch {
        r.problems.push(
          `TRUST_PROXY must be true, false, a hop count or addresses/CIDRs (10.0.0.0/8,loopback), got "${tp}"`,
        );
      }
    }
  }
  const ipListUrls = list(r.env.B24_IP_LIST_URLS);
  for (const u of ipListUrls ?? []) {
    if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) {
      r.problems.push(`B24_IP_LIST_URLS: "${u}" is not an http(s) URL`);
    }
  }
  return { ipAllowlist, ipListUrls, trustProxy };
}

/** `SESSION_SECRET` and `TOKEN_ENCRYPTION_KEY`, else the ones generated into DATA_DIR. */
export function parseSecrets(
  r: EnvReader,
  generated: GeneratedSecrets | undefined,
): Pick<Config, 'sessionSecret' | 'tokenEncryptionKey' | 'tokenKeyFromFile' | 'tokenKeyCreated'> {
  const sessionSecret = r.env.SESSION_SECRET?.trim() || generated?.sessionSecret || '';
  if (sessionSecret.length < 16) {
    r.problems.push(
      'SESSION_SECRET must be at least 16 characters (or leave it unset to generate)',
    );
  }
  let tokenEncryptionKey: Buffer = Buffer.alloc(0);
  const rawKey = r.env.TOKEN_ENCRYPTION_KEY?.trim() || generated?.tokenEncryptionKey;
  const key = rawKey ? decodeKey(rawKey) : undefined;
  if (!key) r.problems.push('TOKEN_ENCRYPTION_KEY must be 32 bytes as 64 hex characters or base64');
  else tokenEncryptionKey = key;
  const tokenKeyFromFile = !r.env.TOKEN_ENCRYPTION_KEY?.trim() && generated !== undefined;
  const tokenKeyCreated = tokenKeyFromFile && generated?.created === true;
  return { sessionSecret, tokenEncryptionKey, tokenKeyFromFile, tokenKeyCreated };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * What one portal's genuine deliveries may store in an hour when PORTAL_INTAKE_MB_PER_HOUR is
 * unset: a real delivery is about a kilobyte, so some 250,000 of them at once.
 */
const DEFAULT_PORTAL_INTAKE_MB_PER_HOUR = 256;

/** `BODY_LIMIT`, `PORTAL_INTAKE_MB_PER_HOUR` and `LOG_LEVEL`. */
export function parseLimits(
  r: EnvReader,
): Pick<Config, 'bodyLimit' | 'portalIntakeBytesPerHour' | 'logLevel'> {
  const { env } = r;
  let bodyLimit = 256 * 1024;
  if (env.BODY_LIMIT?.trim()) {
    const b = parseByteSize(env.BODY_LIMIT);
    if (b === undefined || b < 1024 || b > 64 * 1024 * 1024) {
      r.problems.push(
        `BODY_LIMIT must be a size from 1kb to 64mb (e.g. 256kb), got "${env.BODY_LIMIT}"`,
      );
    } else bodyLimit = b;
  }
  const logLevel = (env.LOG_LEVEL?.trim().toLowerCase() || 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    r.problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);
  }
  const portalIntakeBytesPerHour =
    r.int('PORTAL_INTAKE_MB_PER_HOUR', DEFAULT_PORTAL_INTAKE_MB_PER_HOUR, 0, 1_000_000) *
    1024 *
    1024;
  if (portalIntakeBytesPerHour > 0 && portalIntakeBytesPerHour < bodyLimit) {
    r.problems.push(
      `PORTAL_INTAKE_MB_PER_HOUR must hold at least one delivery of BODY_LIMIT (${bodyLimit} bytes), or be 0 (off)`,
    );
  }
  return { bodyLimit, portalIntakeBytesPerHour, logLevel };
}
