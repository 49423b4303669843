import type { PortalState } from './state.js';
import type { EmulatedUser } from './types.js';

/**
 * A REST error as Bitrix24 returns it: `{error, error_description[, argument]}` with a status,
 * and never a `time` block: CORE:classes/general/rest.php `outputError` answers
 * `$this->error->output()` alone, where `processResponse` (success) appends `time` through
 * `appendDebugInfo`.
 */
export class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string,
    readonly argument?: string,
  ) {
    super(`${code}: ${description}`);
  }

  toJSON(): Record<string, unknown> {
    const body: Record<string, unknown> = {
      error: this.code,
      error_description: this.description,
    };
    if (this.argument !== undefined) body['argument'] = this.argument;
    return body;
  }
}

/** Who is calling and how. */
export interface CallContext {
  via: 'oauth' | 'webhook';
  userId: number;
  user: EmulatedUser | undefined;
  isAdmin: boolean;
  token: string | null;
  /** The app the OAuth token belongs to (undefined for webhooks). */
  clientId?: string;
  /** Who the operating time is counted for (operating-limit.ts): the app or the webhook. */
  caller: string;
  /**
   * `auth_connector` of the request's auth data. The core reads it only from the top-level
   * request (CORE:lib/oauth/auth.php `Auth::$authQueryAdditional`, kept by
   * CORE:classes/general/rest.php `checkAuth` as `$this->authData`), and every method reads
   * it from there (`$server->getAuthData()['auth_connector']` in CORE:lib/api/event.php
   * `eventBind`, `eventUnbind`, `eventOfflineGet|Clear|Error`). A `batch` sub-command runs
   * with its parent's CRestServer, so an `auth_connector` in a sub-command's query is an
   * ordinary parameter there and is ignored. '' when absent.
   */
  authConnector: string;
  /** Scopes of the installed app (the token's `scope`); enforced on methods and events. */
  scopes: ReadonlySet<string>;
}

export interface MethodResult {
  result: unknown;
  total?: number;
  next?: number;
}

export type MethodHandler = (
  params: Record<string, unknown>,
  call: CallContext,
  portal: PortalState,
) => MethodResult | Promise<MethodResult>;

/** Case-insensitive parameter lookup: Bitrix24 accepts `id` and `ID` alike. */
export function param(params: Record<string, unknown>, name: string): unknown {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(params)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

export function paramString(params: Record<string, unknown>, name: string): string {
  const v = param(params, name);
  return v === undefined || v === null ? '' : String(v);
}

export const wrongAuthType = (): RestError =>
  new RestError(
    403,
    'WRONG_AUTH_TYPE',
    'Current authorization type is denied for this method Application context required',
  );

export const accessDenied = (description = 'Access denied!'): RestError =>
  new RestError(403, 'ACCESS_DENIED', description);
