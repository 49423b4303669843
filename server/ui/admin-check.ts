import type { Request } from 'express';
import type { Deps } from '../deps.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import type { PortalRow } from '../../db/stores/portals.js';
import type { UiUser } from './session.js';

/**
 * How long an administrator's rights are taken on the word of the last check with the
 * portal. A portal owner who takes a user's admin rights away in Bitrix24 expects that to
 * hold in our app within minutes, not for the rest of a rolling 2-hour session; asking
 * more often would cost a REST call on most page views.
 */
export const ADMIN_RECHECK_MS = 5 * 60_000;

/**
 * What an admin's session keeps to ask the portal again: the frame's AUTH_ID, encrypted with
 * the token key (it is the user's own token, never shown or logged), and when the portal last
 * confirmed the rights.
 */
export interface AdminProof {
  token: string;
  checkedAt: number;
}

/** The proof an admin's new session starts with (entry just confirmed it with `profile`). */
export function adminProof(deps: Pick<Deps, 'box'>, authId: string, now: number): AdminProof {
  return { token: deps.box.encrypt(authId), checkedAt: now };
}

/**
 * The user as this request may act: an admin whose rights were confirmed more than
 * ADMIN_RECHECK_MS ago is asked about again with `user.admin` (b24restdocs
 * api-reference/common/users/user-admin.md: whether the token's user is an administrator),
 * on the portal's REST budget like the entry checks. No longer an admin, or a token the
 * portal refuses (expired after its hour; reopening the app brings a fresh one): the
 * session goes on as a reader. The portal busy or not answering: a reader for this request
 * only, and asked again on the next.
 */
export async function currentRights(
  deps: Pick<Deps, 'bitrix' | 'box' | 'clock' | 'logger'>,
  req: Request,
  portal: PortalRow,
): Promise<UiUser> {
  const user = req.session.b24!;
  if (!user.isAdmin) return user;
  const now = deps.clock.now().getTime();
  const proof = req.session.b24Admin;
  if (proof && now - proof.checkedAt < ADMIN_RECHECK_MS) return user;
  let still = false;
  if (proof) {
    try {
      const answer = await deps.bitrix.probe<unknown>(
        {
          memberId: portal.member_id,
          domain: portal.domain,
          clientEndpoint: portal.client_endpoint ?? `https://${portal.domain}/rest/`,
        },
        { accessToken: deps.box.decrypt(proof.token) },
        'user.admin',
        {},
      );
      still = answer === true || answer === 'Y' || answer === 'true';
    } catch (e) {
      if (isBitrixApiError(e) && e.retryable) {
        deps.logger.info(
          { memberId: portal.member_id, userId: user.userId, err: e },
          'admin rights could not be confirmed now; a reader for this request',
        );
        return { ...user, isAdmin: false };
      }
      deps.logger.info(
        { memberId: portal.member_id, userId: user.userId, err: e },
        'admin rights not confirmed: the token was refused',
      );
    }
  }
  if (still) {
    req.session.b24Admin = { ...proof!, checkedAt: now };
    return user;
  }
  deps.logger.info(
    { memberId: portal.member_id, userId: user.userId },
    'admin rights no longer confirmed by the portal; the session goes on as a reader',
  );
  const reader: UiUser = { ...user, isAdmin: false };
  req.session.b24 = reader;
  req.session.b24Admin = undefined;
  return reader;
}
