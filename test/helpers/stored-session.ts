import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { KnexSessionStore } from '../../db/stores/sessions.js';
import { SESSION_COOKIE, SESSION_TTL_MS, signedSessionId } from '../../server/ui/session.js';

/**
 * An admin's UI session written straight into the sessions table, for benchmarks that read
 * the pages of a server they did not open through Bitrix24's frame. Returns the Cookie header.
 */
export async function storedAdminSession(
  db: Knex,
  sessionSecret: string,
  portal: { id: number; memberId: string },
  now = Date.now(),
): Promise<string> {
  const sid = randomBytes(24).toString('base64url');
  await new Promise<void>((resolve, reject) =>
    new KnexSessionStore(db, { now: () => now }).set(
      sid,
      {
        cookie: { originalMaxAge: SESSION_TTL_MS, expires: new Date(now + SESSION_TTL_MS) },
        b24: {
          portalId: portal.id,
          memberId: portal.memberId,
          userId: 1,
          isAdmin: true,
          lang: 'en',
        },
        // Admin rights are re-checked with the portal every few minutes (server/ui/
        // admin-check.ts); a benchmark has no user token to ask with, so its check is never due.
        b24Admin: { token: '', checkedAt: Number.MAX_SAFE_INTEGER },
      } as never,
      (e) => (e ? reject(e as Error) : resolve()),
    ),
  );
  return `${SESSION_COOKIE}=${encodeURIComponent(signedSessionId(sid, sessionSecret))}`;
}
