import { randomHex } from './http-util.js';

/** Refresh tokens live 180 days (DOCS:settings/oauth/index.md). */
const REFRESH_TTL_MS = 180 * 24 * 3600 * 1000;
/** How long a portal keeps the OAuth server's answer about a token (CORE:lib/oauth/auth.php `CACHE_TTL`). */
const PORTAL_CACHE_MS = 3600 * 1000;

interface AccessRecord {
  token: string;
  memberId: string;
  userId: number;
  /** The app the token was issued to: the emulator's own, or another app on the portal. */
  clientId: string;
  expiresAt: number;
  expired: boolean;
  revoked: boolean;
  /**
   * When the portal last asked the OAuth server about this token, and what it heard (its
   * cache: CORE:lib/oauth/auth.php `check` stores the answer, `CACHE_TTL = 3600`).
   */
  checked?: { at: number; installed: boolean };
}

interface RefreshRecord {
  token: string;
  memberId: string;
  userId: number;
  clientId: string;
  expiresAt: number;
  used: boolean;
  revoked: boolean;
}

export interface IssuedTokens {
  accessToken: string;
  refreshToken: string;
  /** Unix seconds. */
  expires: number;
  expiresIn: number;
}

export type AccessCheck =
  | { ok: true; memberId: string; userId: number; clientId: string }
  | { ok: false; error: 'invalid_token' | 'expired_token' };

export type RefreshCheck =
  | { ok: true; memberId: string; userId: number; clientId: string }
  | { ok: false; error: 'invalid_grant' };

export interface TokenStore {
  /** Tokens of `clientId`'s app (default: the emulator's own app) for a user of a portal. */
  issue(memberId: string, userId: number, clientId?: string): IssuedTokens;
  checkAccess(token: string): AccessCheck;
  /** Consumes a refresh token: it is then spent, as Bitrix24 rotates refresh tokens. */
  consumeRefresh(token: string): RefreshCheck;
  /** Whether `token` is a refresh token issued for that portal (spent or not). */
  refreshBelongsTo(token: string, memberId: string): boolean;
  /** The portal and app an access token was issued to (expired and revoked ones too). */
  accessIssuedTo(token: string): { memberId: string; clientId: string } | undefined;
  expireAccess(memberId: string): void;
  revokeRefresh(memberId: string): void;
  revokeAll(memberId: string): void;
  /**
   * Whether the answer the portal goes by says the app is installed: the OAuth server's answer
   * about this token from the portal's cache, if it asked under an hour ago, else the server's
   * answer now (`installedNow`), which it then keeps (CORE:lib/oauth/auth.php `check`:
   * `restore()` from the cache, else `checkAuth()` and `store()`, whatever the answer;
   * `CACHE_TTL = 3600`).
   */
  portalCheck(token: string, installedNow: boolean): boolean;
  /** Every cached answer of the portal forgotten (expired, evicted, another web node). */
  forgetChecks(memberId: string): void;
  /** Every access and refresh token issued so far (spent and revoked ones included). */
  issued(): string[];
}

/**
 * Access tokens live `accessTokenTtlSec` (1 hour: DOCS:settings/oauth/index.md), and a refresh
 * token is spent by its first use (rotation: DOCS:settings/oauth/auto-renewal.md; reuse gives
 * invalid_grant, which the docs imply rather than state). Real tokens are 70 hex characters with
 * the issue time and the user id inside, e.g. `be45f066…0000000100…`. Same shape here so log
 * redaction and column sizes get tested.
 */
function makeToken(nowMs: number, userId: number): string {
  const ts = Math.floor(nowMs / 1000)
    .toString(16)
    .padStart(8, '0');
  return `${ts}${randomHex(8)}${userId.toString(16).padStart(8, '0')}${randomHex(19)}`;
}

export function createTokenStore(
  now: () => number,
  accessTtlSec: number,
  ownClientId = '',
): TokenStore {
  const access = new Map<string, AccessRecord>();
  const refresh = new Map<string, RefreshRecord>();

  return {
    issue(memberId, userId, clientId = ownClientId) {
      const at = now();
      const accessToken = makeToken(at, userId);
      const refreshToken = makeToken(at, userId);
      const expiresAt = at + accessTtlSec * 1000;
      access.set(accessToken, {
        token: accessToken,
        memberId,
        userId,
        clientId,
        expiresAt,
        expired: false,
        revoked: false,
      });
      refresh.set(refreshToken, {
        token: refreshToken,
        memberId,
        userId,
        clientId,
        expiresAt: at + REFRESH_TTL_MS,
        used: false,
        revoked: false,
      });
      return {
        accessToken,
        refreshToken,
        expires: Math.floor(expiresAt / 1000),
        expiresIn: accessTtlSec,
      };
    },
    checkAccess(token) {
      const rec = access.get(token);
      if (!rec || rec.revoked) return { ok: false, error: 'invalid_token' };
      if (rec.expired || rec.expiresAt <= now()) return { ok: false, error: 'expired_token' };
      return { ok: true, memberId: rec.memberId, userId: rec.userId, clientId: rec.clientId };
    },
    consumeRefresh(token) {
      const rec = refresh.get(token);
      if (!rec || rec.used || rec.revoked || rec.expiresAt <= now()) {
        return { ok: false, error: 'invalid_grant' };
      }
      rec.used = true;
      return { ok: true, memberId: rec.memberId, userId: rec.userId, clientId: rec.clientId };
    },
    refreshBelongsTo: (token, memberId) => refresh.get(token)?.memberId === memberId,
    accessIssuedTo(token) {
      const rec = access.get(token);
      return rec && { memberId: rec.memberId, clientId: rec.clientId };
    },
    portalCheck(token, installedNow) {
      const rec = access.get(token);
      if (!rec) return installedNow;
      const at = now();
      if (rec.checked && at - rec.checked.at < PORTAL_CACHE_MS) return rec.checked.installed;
      rec.checked = { at, installed: installedNow };
      return installedNow;
    },
    forgetChecks(memberId) {
      for (const rec of access.values()) if (rec.memberId === memberId) delete rec.checked;
    },
    expireAccess(memberId) {
      for (const rec of access.values()) if (rec.memberId === memberId) rec.expired = true;
    },
    revokeRefresh(memberId) {
      for (const rec of refresh.values()) if (rec.memberId === memberId) rec.revoked = true;
    },
    revokeAll(memberId) {
      for (const rec of access.values()) if (rec.memberId === memberId) rec.revoked = true;
      for (const rec of refresh.values()) if (rec.memberId === memberId) rec.revoked = true;
    },
    issued: () => [...access.keys(), ...refresh.keys()],
  };
}
