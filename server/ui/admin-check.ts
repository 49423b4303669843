import type { Request } from 'express';
import type { Deps } from '../deps.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { isVouchedPortal } from '../bitrix/hosts.js';
import { InvalidGrantError } from '../bitrix/oauth.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { type AdminProof, type UiUser } from './session.js';
import { sharedRefresh } from './user-renewal.js';

/**
 * How long an administrator's rights are taken on the word of the last check with the
 * portal. A portal owner who takes a user's admin rights away in Bitrix24 expects that to
 * hold in our app within minutes, not for the rest of a rolling 2-hour session; asking
 * more often would cost a REST call on most page views.
 */
export const ADMIN_RECHECK_MS = 5 * 60_000;

/** How long a session waits before asking again after such a failure. */
export const RIGHTS_RETRY_MS = 60_000;

/** The proof an admin's new session starts with (entry just confirmed it with `profile`). */
export function adminProof(
  deps: Pick<Deps, 'box'>,
  authId: string,
  refreshId: string | undefined,
  now: number,
): AdminProof {
  return {
    token: deps.box.encrypt(authId),
    ...(refreshId ? { refresh: deps.box.encrypt(refreshId) } : {}),
    checkedAt: now,
  };
}

type RightsDeps = Pick<Deps, 'bitrix' | 'box' | 'clock' | 'db' | 'logger'>;

/** What the portal said about the rights: yes, no, or nothing definite (ask again next time). */
type Verdict =
  | { admin: true; proof: AdminProof }
  /** `proof`: the token still answers, so the session can be asked again (a promotion). */
  | { admin: false; proof?: AdminProof }
  /** `proof`: a renewed pair to keep although the rights are still to be confirmed. */
  | { admin: 'unknown'; err: unknown; proof?: AdminProof };

async function askUserAdmin(
  deps: RightsDeps,
  portal: PortalRow,
  accessToken: string,
): Promise<boolean> {
  const answer = await deps.bitrix.probe<unknown>(
    {
      memberId: portal.member_id,
      domain: portal.domain,
      clientEndpoint: portal.client_endpoint ?? `https://${portal.domain}/rest/`,
      vouched: isVouchedPortal(portal),
    },
    { accessToken },
    'user.admin',
    {},
  );
  return answer === true || answer === 'Y' || answer === 'true';
}

/**
 * The token's hour is over: b24restdocs _includes/system-errors.md lists 401 `expired_token`
 * ("the access token has expired"); `invalid_token` is what SDKs treat the same way (a token
 * the server no longer knows). Both are answered by a refresh, which says whether the user's
 * authorization still holds.
 */
const TOKEN_ENDED = new Set(['expired_token', 'invalid_token']);

/**
 * Asks `user.admin` with the session's token; when the portal refuses the token as expired,
 * refreshes the pair (the docs' recommended logic: refresh, store the new pair, repeat the
 * request — b24restdocs settings/oauth/auto-renewal.md) and asks once more.
 */
async function askAgain(
  deps: RightsDeps,
  portal: PortalRow,
  proof: AdminProof,
  userId: number,
  now: number,
): Promise<Verdict> {
  let token: string;
  let refresh: string | undefined;
  try {
    token = deps.box.decrypt(proof.token);
    refresh = proof.refresh ? deps.box.decrypt(proof.refresh) : undefined;
  } catch {
    // Sealed with a key this instance no longer has: the session cannot ask; reopening the
    // app brings a fresh pair.
    return { admin: false };
  }
  try {
    const admin = await askUserAdmin(deps, portal, token);
    return { admin, proof };
  } catch (e) {
    if (!isBitrixApiError(e) || !TOKEN_ENDED.has(e.bitrixCode)) return settle(e);
    // The token's hour is over and nothing may renew it (a session started before
    // REFRESH_ID was kept, or one whose pair became the portal's own: frame-entry.ts):
    // definite, and asking again on every page would change nothing; reopening the app
    // brings a fresh pair.
    if (refresh === undefined) return { admin: false };
  }
  let pair;
  try {
    pair = await sharedRefresh(deps, portal, refresh, userId, now);
  } catch (e) {
    // invalid_grant: the user's authorization is over (b24restdocs settings/oauth/
    // error-codes.md); only reopening the app from Bitrix24 brings a new one.
    if (e instanceof InvalidGrantError) return { admin: false };
    return { admin: 'unknown', err: e };
  }
  const renewed: AdminProof = {
    token: deps.box.encrypt(pair.accessToken),
    refresh: deps.box.encrypt(pair.refreshToken),
    checkedAt: proof.checkedAt,
  };
  try {
    const admin = await askUserAdmin(deps, portal, pair.accessToken);
    return { admin, proof: renewed };
  } catch (e) {
    const v = settle(e);
    // Keep the new pair even when the portal cannot answer now: the old one is spent.
    return v.admin === 'unknown' ? { ...v, proof: renewed } : v;
  }
}

/**
 * A failure of `user.admin` itself. The portal busy, not answering, or saying something we
 * cannot read: nothing definite. A token it refuses with no refresh to try (a session
 * started before REFRESH_ID was kept), or a refusal of the user (`authorization_error`,
 * `user_access_error`: the user may not use the app): not an admin.
 */
function settle(e: unknown): Verdict {
  if (isBitrixApiError(e) && !e.retryable && e.httpStatus >= 400 && e.httpStatus < 500) {
    return { admin: false };
  }
  return { admin: 'unknown', err: e };
}

/**
 * The user as this request may act. Rights confirmed more than ADMIN_RECHECK_MS ago are
 * asked about again with `user.admin` (b24restdocs api-reference/common/users/user-admin.md:
 * whether the token's user is an administrator), on the portal's REST budget like the entry
 * checks: an admin's, so that rights taken away in Bitrix24 end within minutes, and a
 * reader's whose token still answers, so that a user made an administrator in Bitrix24
 * can act as one within minutes without reopening the app. After the token's hour the
 * user's refresh token renews it (askAgain), so an admin who keeps the app open stays one.
 * Only a definite answer ends the rights: `false`, the portal refusing the user, or the
 * OAuth server refusing the refresh (invalid_grant; then the session is not asked again).
 * The portal or OAuth server busy or not answering: a reader for this request only, and
 * asked again on the next.
 */
export async function currentRights(
  deps: RightsDeps,
  req: Request,
  portal: PortalRow,
): Promise<UiUser> {
  const user = req.session.b24!;
  const proof = req.session.b24Admin;
  if (!user.isAdmin && !proof) return user;
  const now = deps.clock.now().getTime();
  if (proof && now - proof.checkedAt < ADMIN_RECHECK_MS) return user;
  if (proof?.retryAt !== undefined && now < proof.retryAt) return { ...user, isAdmin: false };
  const verdict: Verdict = proof
    ? await askAgain(deps, portal, proof, user.userId, now)
    : { admin: false };
  if (verdict.admin === 'unknown') {
    // The portal busy or down: asked again on the next request; anything else, in a minute.
    const passing = isBitrixApiError(verdict.err) && verdict.err.retryable;
    const kept = verdict.proof ?? proof;
    if (kept) {
      const { retryAt: _, ...rest } = kept;
      req.session.b24Admin = passing ? rest : { ...rest, retryAt: now + RIGHTS_RETRY_MS };
    }
    if (user.isAdmin) {
      deps.logger.info(
        { memberId: portal.member_id, userId: user.userId, err: verdict.err },
        'admin rights could not be confirmed now; a reader for this request',
      );
    }
    return { ...user, isAdmin: false };
  }
  req.session.b24Admin = verdict.proof
    ? { token: verdict.proof.token, refresh: verdict.proof.refresh, checkedAt: now }
    : undefined;
  if (verdict.admin === user.isAdmin) return user;
  deps.logger.info(
    { memberId: portal.member_id, userId: user.userId },
    verdict.admin
      ? 'the portal now names the user an administrator; the session acts as one'
      : 'admin rights no longer confirmed by the portal; the session goes on as a reader',
  );
  const { demoted: _, ...rest } = user;
  const changed: UiUser = verdict.admin
    ? { ...rest, isAdmin: true }
    : { ...rest, isAdmin: false, demoted: true };
  req.session.b24 = changed;
  return changed;
}
