import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { hostOf } from '../bitrix/hosts.js';
import { InvalidGrantError, type RefreshAnswer } from '../bitrix/oauth.js';
import { pauseReasonOf } from '../bitrix/refresh.js';
import type { ProbeOptions, TokenTarget } from '../bitrix/rest.js';

/** The token is live on the portal but belongs to another app there (`app.info` CODE). */
export class ForeignAppTokenError extends AppError {
  constructor(code: string) {
    super('UNAUTHORIZED', `the token belongs to another application (${code.slice(0, 80)})`, {
      status: 401,
    });
    this.name = 'ForeignAppTokenError';
  }
}

export interface TokenHolder {
  userId: number;
  isAdmin: boolean;
  /** `profile` TIME_ZONE (`Europe/Berlin`); empty when the user has not set one. */
  timeZone: string;
  /** `profile` NAME and LAST_NAME ("Ann Smith"), at most 100 characters; empty when unnamed. */
  name: string;
}

/** What `profile` returns (b24restdocs api-reference/common/users/profile.md). */
interface Profile {
  ID?: string | number;
  ADMIN?: boolean | string;
  TIME_ZONE?: string;
  NAME?: string;
  LAST_NAME?: string;
}

/**
 * What a portal says about an access token, asked of the portal itself (`target`, an address
 * the caller has checked): `profile` names the user and whether they are an administrator,
 * `app.info` the app that holds the token (DOCS:api-reference/common/system/app-info.md). A
 * token of another app on the same portal passes `profile` just as well, so its CODE must be
 * ours (B24_APP_CODE, by default B24_CLIENT_ID); only with neither set (insecure development
 * mode) is that check skipped. Throws the portal's error (BitrixApiError: `retryable` for an
 * outage or a busy REST budget) or ForeignAppTokenError.
 */
export async function askPortalAboutToken(
  deps: Pick<Deps, 'bitrix' | 'config'>,
  target: TokenTarget,
  accessToken: string,
  opts: ProbeOptions = {},
): Promise<TokenHolder> {
  const profile = await deps.bitrix.probe<Profile>(target, { accessToken }, 'profile', {}, opts);
  const expected = deps.config.b24.appCode;
  if (expected) {
    const app = await deps.bitrix.probe<{ CODE?: unknown }>(
      target,
      { accessToken },
      'app.info',
      {},
      opts,
    );
    const code = typeof app?.CODE === 'string' ? app.CODE : '';
    if (code !== expected) throw new ForeignAppTokenError(code);
  }
  return {
    userId: Number(profile.ID),
    isAdmin: profile.ADMIN === true || profile.ADMIN === 'Y' || profile.ADMIN === 'true',
    timeZone: typeof profile.TIME_ZONE === 'string' ? profile.TIME_ZONE.trim() : '',
    name: [profile.NAME, profile.LAST_NAME]
      .map((n) => (typeof n === 'string' ? n.trim() : ''))
      .filter(Boolean)
      .join(' ')
      .slice(0, 100),
  };
}

/** What the OAuth server said about an install's refresh token. */
export type OAuthVerdict =
  | { kind: 'confirmed'; answer: RefreshAnswer }
  /** It answered for another portal (member_id or client endpoint differ). */
  | { kind: 'mismatch'; detail: string }
  /**
   * It refused the token with our credentials: not ours (another app) or spent; or, with
   * `credentials`, it refused our client id or secret themselves (refresh.ts `pauseReasonOf`).
   */
  | { kind: 'refused'; detail: string; credentials?: true }
  /** Network error, timeout or 5xx: nothing is proven either way. */
  | { kind: 'unavailable'; detail: string };

/**
 * The install proof (server/README.md#what-the-app-trusts-and-why): the refresh token is exchanged
 * at the OAuth server with OUR client credentials, and the answer must name the same member_id and
 * a client endpoint on the same portal. A token of another app, or of another portal, cannot
 * pass. The exchange rotates the pair: on `confirmed`, the answer's tokens are the ones to
 * keep.
 */
export async function askOAuthServer(
  deps: Pick<Deps, 'bitrix'>,
  claim: { serverEndpoint: string; refreshToken: string; memberId: string; domain: string },
): Promise<OAuthVerdict> {
  let answer: RefreshAnswer;
  try {
    answer = await deps.bitrix.exchangeRefreshToken(claim.serverEndpoint, claim.refreshToken);
  } catch (e) {
    if (e instanceof InvalidGrantError) return { kind: 'refused', detail: 'invalid_grant' };
    if (isBitrixApiError(e) && e.retryable) return { kind: 'unavailable', detail: e.message };
    if (pauseReasonOf(e) === 'invalid_client') {
      return { kind: 'refused', detail: (e as Error).message, credentials: true };
    }
    return { kind: 'refused', detail: (e as Error).message };
  }
  if (answer.member_id !== claim.memberId) {
    return { kind: 'mismatch', detail: 'the OAuth server names another member_id' };
  }
  const endpointHost = answer.client_endpoint ? hostOf(answer.client_endpoint) : undefined;
  if (endpointHost !== claim.domain.toLowerCase()) {
    return { kind: 'mismatch', detail: 'the OAuth server names another portal address' };
  }
  return { kind: 'confirmed', answer };
}
