import type { Config } from '../config.js';
import { AppError } from '../lib/errors.js';
import type { SecretBox } from '../lib/crypto.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { NotAllowedHostError, bitrixApiError } from './errors.js';
import { allowedOAuthOrigin } from './hosts.js';
import { requestJson, type FetchFn } from './transport.js';

/** The OAuth server's answer to a refresh (b24restdocs settings/oauth/auto-renewal.md). */
export interface RefreshAnswer {
  access_token: string;
  refresh_token: string;
  expires?: number;
  expires_in?: number;
  client_endpoint?: string;
  server_endpoint?: string;
  member_id?: string;
  scope?: string;
  status?: string;
  user_id?: number;
  /** The OAuth server's host here, not the portal. */
  domain?: string;
}

/** The refresh token is spent or expired: only an admin opening the app or reinstalling helps. */
export class InvalidGrantError extends AppError {
  constructor() {
    super('UNAUTHORIZED', 'the refresh token was refused (invalid_grant)', { status: 401 });
    this.name = 'InvalidGrantError';
  }
}

/**
 * Exchanges a refresh token at the portal's OAuth server. The client secret is sent only to
 * an origin listed in B24_OAUTH_SERVERS; anything else is refused before any request.
 */
export async function exchangeRefreshToken(
  config: Pick<Config, 'b24'>,
  fetchFn: FetchFn,
  serverEndpoint: string,
  refreshToken: string,
): Promise<RefreshAnswer> {
  const origin = allowedOAuthOrigin(config, serverEndpoint);
  if (!origin) throw new NotAllowedHostError('the OAuth server is not in B24_OAUTH_SERVERS');
  const { clientId, clientSecret } = config.b24;
  if (!clientId || !clientSecret) {
    throw new AppError(
      'CONFIG',
      'B24_CLIENT_ID and B24_CLIENT_SECRET are needed to refresh tokens',
    );
  }
  const { status, json = {} } = await requestJson(
    fetchFn,
    `${origin}/oauth/token/`,
    {
      contentType: 'application/x-www-form-urlencoded',
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: clientId,
        client_secret: clientSecret,
        refresh_token: refreshToken,
      }).toString(),
      timeoutMs: 30_000,
    },
    () => ({ bitrixCode: 'NETWORK_ERROR', httpStatus: 0, method: 'oauth/token', description: '' }),
  );
  if (json.error === 'invalid_grant') throw new InvalidGrantError();
  if (status !== 200 || typeof json.access_token !== 'string') {
    throw bitrixApiError({
      bitrixCode: typeof json.error === 'string' ? json.error : 'ERROR_UNEXPECTED_ANSWER',
      httpStatus: status,
      method: 'oauth/token',
      description: typeof json.error_description === 'string' ? json.error_description : '',
    });
  }
  return json as unknown as RefreshAnswer;
}

/** A portal's tokens in clear, for the moment of a call. */
export interface PortalTokens {
  accessToken: string;
  refreshToken: string;
  /** Milliseconds on deps.clock; null when unknown. */
  expiresAt: number | null;
}

/**
 * The stored credentials are opened here and nowhere else in server/bitrix: the token pair
 * (readTokens) and an inbound webhook's URL (readWebhookUrl), each at the moment of a call.
 */
export function readTokens(box: SecretBox, row: PortalRow): PortalTokens | undefined {
  if (!row.access_token_enc || !row.refresh_token_enc) return undefined;
  return {
    accessToken: box.decrypt(row.access_token_enc),
    refreshToken: box.decrypt(row.refresh_token_enc),
    expiresAt: row.token_expires_at,
  };
}

/** The inbound webhook URL a portal was connected with, or undefined for an OAuth portal. */
export function readWebhookUrl(box: SecretBox, row: PortalRow): string | undefined {
  return row.webhook_url_enc ? box.decrypt(row.webhook_url_enc) : undefined;
}

/** The columns that store a token pair: encrypted, with its expiry on our clock. */
export function tokenColumns(
  box: SecretBox,
  t: { accessToken: string; refreshToken: string; expiresInSec: number | undefined },
  nowMs: number,
) {
  return {
    access_token_enc: box.encrypt(t.accessToken),
    refresh_token_enc: box.encrypt(t.refreshToken),
    token_expires_at: nowMs + (t.expiresInSec && t.expiresInSec > 0 ? t.expiresInSec : 3600) * 1000,
  };
}
