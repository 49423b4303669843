import type { Deps } from '../deps.js';
import { safeEqual } from '../lib/crypto.js';
import { resolveUnverified } from '../intake/reverify.js';
import { SHARED_KEY_FIELD } from '../intake/dedupe-key.js';
import { PausedError, PermanentError, RetryableError } from '../lib/retry-errors.js';
import type { JobHandler, JobRow } from '../queue/types.js';
import { nextRunAt } from '../queue/backoff.js';
import { toError } from '../lib/errors.js';
import { queueUnlessPending } from '../../db/stores/jobs.js';
import {
  listUnverified,
  takeSharedKey,
  updateEvent,
  type EventRow,
} from '../../db/stores/events.js';
import {
  findPortalById,
  markPortalUninstalled,
  updatePortal,
  type PortalRow,
} from '../../db/stores/portals.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { NotAllowedHostError } from '../bitrix/errors.js';
import { readTokens, tokenColumns } from '../bitrix/oauth.js';
import { isVouchedPortal } from '../bitrix/hosts.js';
import { expireUnverified } from '../../db/stores/unverified.js';
import { proofJobKey, UNVERIFIED_TTL_MS } from '../intake/unverified-cap.js';
import { askOAuthServer, askPortalAboutToken, ForeignAppTokenError } from './token-proof.js';
import { askForTokenTest, syncBindings } from './bindings.js';
import { erasePortalEntirely } from '../retention/erase.js';

/** The stored (masked) delivery's `data`. */
function dataOf(event: EventRow): Record<string, unknown> {
  try {
    const body = JSON.parse(event.body ?? '{}') as { data?: unknown };
    return body.data && typeof body.data === 'object' ? (body.data as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

async function reject(deps: Deps, event: EventRow, reason: string, detail: string) {
  // Only while it is unverified: another caller may have verified it meanwhile (its key and
  // job are then the truth). A rejected delivery holds no key: a genuine one may still come.
  await updateEvent(
    deps.db,
    event.id,
    {
      status: 'rejected',
      reject_reason: reason,
      auth_enc: null,
      dedupe_key: null,
      processed_at: deps.clock.now().getTime(),
    },
    'unverified',
  );
  deps.logger.warn(
    { eventId: event.id, memberId: event.member_id, reason, detail },
    'lifecycle event rejected',
  );
  return { note: `rejected: ${reason}` };
}

interface DeliveredTokens {
  access_token?: string;
  refresh_token?: string;
  application_token?: string;
  expires_in?: string;
  [SHARED_KEY_FIELD]?: string;
}

/** Unverified ONAPPINSTALL (or ONAPPTEST) deliveries a proof job reads per round. */
const PROOF_ROUND = 10;

/**
 * The deliveries that prove their own tokens: ONAPPINSTALL, and ONAPPTEST, which the app asks
 * for while it lacks the application token (install/bindings.ts TOKEN_TEST_EVENT). Both carry
 * an administrator's access token; only ONAPPINSTALL a refresh token as well.
 */
const PROOF_EVENTS = ['ONAPPINSTALL', 'ONAPPTEST'];

/**
 * How soon a proof job that found nothing to prove, with deliveries still waiting, looks
 * again. Short: while it is pending, an ONAPPINSTALL that comes meanwhile queues no proof job
 * of its own (one pending per portal), so it is proven at this job's next run.
 */
export const PROOF_RECHECK_MS = 30_000;

const canProve = (deps: Deps) => Boolean(deps.config.b24.clientId && deps.config.b24.clientSecret);

function storedTarget(portal: PortalRow) {
  return {
    memberId: portal.member_id,
    domain: portal.domain,
    clientEndpoint: portal.client_endpoint ?? `https://${portal.domain}/rest/`,
    vouched: isVouchedPortal(portal),
  };
}

/** The OAuth server could not be asked now: the job is retried later, nothing is decided. */
function oauthUnavailable(detail: string): RetryableError {
  return new RetryableError(`the OAuth server is not answering: ${detail}`.slice(0, 300), {
    retryAfterMs: 60_000,
  });
}

/**
 * One unverified ONAPPINSTALL (or ONAPPTEST): its access token must work on the STORED
 * portal's client endpoint, be our app's (`app.info`) and belong to an administrator; for an
 * install the OAuth server has not confirmed yet, its refresh token (ONAPPINSTALL and
 * ONAPPTEST carry one) must also pass the exchange with our credentials. Proven, its application token
 * is adopted; unproven, it is rejected and nothing stored changes. A portal or OAuth server that cannot answer now (outage, REST
 * budget busy) throws a RetryableError: the delivery stays unverified for the next try.
 */
async function proveOne(deps: Deps, portal: PortalRow, event: EventRow): Promise<boolean> {
  let tokens: DeliveredTokens;
  try {
    tokens = JSON.parse(deps.box.decrypt(event.auth_enc ?? '')) as DeliveredTokens;
  } catch {
    await reject(deps, event, 'unprovable', 'no delivered tokens kept');
    return false;
  }
  if (!tokens.access_token || !tokens.application_token) {
    await reject(deps, event, 'unprovable', 'the delivery carried no access token');
    return false;
  }
  let holder;
  try {
    holder = await askPortalAboutToken(deps, storedTarget(portal), tokens.access_token);
  } catch (e) {
    if (
      (isBitrixApiError(e) && !e.retryable) ||
      e instanceof NotAllowedHostError ||
      e instanceof ForeignAppTokenError
    ) {
      await reject(deps, event, 'token_unproven', (e as Error).message);
      return false;
    }
    throw e;
  }
  if (!holder.isAdmin) {
    await reject(deps, event, 'token_unproven', 'the token is not an administrator’s');
    return false;
  }
  const now = deps.clock.now().getTime();
  let pair: { accessToken: string; refreshToken: string; expiresInSec?: number } | undefined;
  let confirmedAt = portal.install_confirmed_at;
  if (confirmedAt === null && canProve(deps)) {
    if (!tokens.refresh_token) {
      await reject(deps, event, 'token_unproven', 'no refresh token to confirm the install');
      return false;
    }
    const verdict = await askOAuthServer(deps, {
      serverEndpoint: portal.server_endpoint ?? '',
      refreshToken: tokens.refresh_token,
      memberId: portal.member_id,
      domain: portal.domain,
    });
    if (verdict.kind === 'unavailable') throw oauthUnavailable(verdict.detail);
    if (verdict.kind !== 'confirmed') {
      await reject(deps, event, 'token_unproven', verdict.detail);
      return false;
    }
    pair = {
      accessToken: verdict.answer.access_token,
      refreshToken: verdict.answer.refresh_token,
      expiresInSec: Number(verdict.answer.expires_in) || undefined,
    };
    confirmedAt = now;
  } else if (
    tokens.refresh_token !== undefined &&
    (!portal.access_token_enc || portal.status === 'needs_reauth')
  ) {
    // Proven tokens fill in a portal that has none (or lost them); stored ones are kept.
    pair = {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      expiresInSec: Number(tokens.expires_in) || undefined,
    };
  }
  const digest = deps.box.digest(tokens.application_token);
  const same =
    portal.application_token_digest !== null && safeEqual(digest, portal.application_token_digest);
  await deps.db.transaction(async (trx) => {
    await updatePortal(trx, portal.id, {
      application_token_digest: digest,
      install_confirmed_at: confirmedAt,
      ...(pair
        ? {
            ...tokenColumns(deps.box, { ...pair, expiresInSec: pair.expiresInSec }, now),
            status: 'installed' as const,
          }
        : {}),
      app_version: versionOf(event) ?? portal.app_version,
      updated_at: now,
    });
    const shared = tokens[SHARED_KEY_FIELD];
    if (shared) await takeSharedKey(trx, event.id, shared);
    await updateEvent(trx, event.id, { status: 'processed', auth_enc: null, processed_at: now });
  });
  deps.portals.invalidate(portal.member_id);
  deps.logger.info(
    { memberId: portal.member_id, replaced: !same && portal.application_token_digest !== null },
    `application token proven by ${event.event}`,
  );
  await resolveUnverified(deps, portal.id);
  return true;
}

/**
 * A portal's proof job (one pending at most, however many ONAPPINSTALL posts arrive): tries
 * the portal's unverified ONAPPINSTALL deliveries oldest first until one proves its token;
 * the rest are then verified or rejected against it (resolveUnverified). Deliveries that
 * waited past UNVERIFIED_TTL_MS are rejected as expired first.
 */
async function proveInstalls(
  deps: Deps,
  portal: PortalRow,
): Promise<{ note: string; againInMs?: number }> {
  const now = deps.clock.now().getTime();
  const expired = await expireUnverified(deps.db, portal.id, now - UNVERIFIED_TTL_MS, now);
  let rejected = 0;
  for (;;) {
    const fresh = (await findPortalById(deps.db, portal.id)) ?? portal;
    if (fresh.status === 'uninstalled') {
      const dropped = await dropUnverified(deps, portal.id);
      return { note: `portal is uninstalled; ${dropped} unverified deliveries rejected` };
    }
    const round = await listUnverified(deps.db, portal.id, PROOF_ROUND, PROOF_EVENTS);
    if (round.length === 0) {
      // Deliveries wait for a token nothing here can prove (the installer POST had none and
      // the ONAPPINSTALL was lost): ask the portal for a delivery that can, and look again
      // while they wait (no attempt spent): to ask again once the last ask may be repeated,
      // and to expire what waited an hour, also on a portal where nothing else arrives.
      const waiting = (await listUnverified(deps.db, portal.id, 1)).length > 0;
      const asked = waiting ? `; ${await askForTokenTest(deps, fresh)}` : '';
      const note = `nothing proven; ${rejected} rejected, ${expired} expired${asked}`;
      return { note, againInMs: waiting ? PROOF_RECHECK_MS : undefined };
    }
    for (const ev of round) {
      if (await proveOne(deps, fresh, ev)) return { note: `proven by event ${ev.id}` };
      rejected++;
    }
  }
}

/**
 * A portal's proof job never goes back to the queue itself. While it runs, a delivery that
 * arrives queues the portal's next one (jobs_one_pending_proof allows one *pending* per
 * portal), and this one pending again would be a second: the update failed on the index and
 * the job stayed running, holding the next one back, for good. So it ends and queues its
 * follow-up (to look again, or to retry a failure with the attempts spent so far) unless that
 * delivery's job is already pending; a delivery that arrives later finds the follow-up and
 * moves it forward (intake `proofDue`).
 */
async function proofRound(
  deps: Deps,
  job: Pick<JobRow, 'entity_key' | 'portal_id' | 'max_attempts' | 'attempts' | 'topic'>,
  owner: PortalRow,
): Promise<{ note: string }> {
  const now = () => deps.clock.now().getTime();
  let next: { at: number; attempts: number; note: string };
  try {
    const round = await proveInstalls(deps, owner);
    if (round.againInMs === undefined) return { note: round.note };
    next = { at: now() + round.againInMs, attempts: job.attempts - 1, note: round.note };
  } catch (thrown) {
    const e = toError(thrown);
    if (e instanceof PausedError) {
      next = { at: now() + e.resumeAfterMs, attempts: job.attempts - 1, note: e.message };
    } else if (e instanceof PermanentError || job.attempts >= job.max_attempts) {
      throw e;
    } else {
      const retryAfter = e instanceof RetryableError ? e.retryAfterMs : undefined;
      const base = deps.config.worker.retryBaseSeconds;
      const at = nextRunAt(now(), job.attempts, base, retryAfter);
      next = { at, attempts: job.attempts, note: e.message };
    }
  }
  const queued = await queueUnlessPending(
    deps.db,
    {
      type: 'lifecycle',
      event_id: null,
      portal_id: owner.id,
      entity_key: job.entity_key,
      payload: null,
      max_attempts: job.max_attempts,
      run_at: next.at,
      topic: job.topic,
    },
    { attempts: Math.max(0, next.attempts), lastError: next.note.slice(0, 2000) },
    now(),
  );
  const then = queued ? `looks again at ${new Date(next.at).toISOString()}` : 'already queued';
  return { note: `${next.note}; the next look ${then}` };
}

/**
 * A verified ONAPPINSTALL for an install the OAuth server has not confirmed (it was down at
 * install time): the stored refresh token is exchanged with our credentials now. Confirmed,
 * the rotated pair is kept; refused or naming another portal, the install is withdrawn
 * (status uninstalled, tokens erased) and the portal's deliveries are refused from then on.
 */
async function confirmInstall(deps: Deps, portal: PortalRow): Promise<string | undefined> {
  if (portal.install_confirmed_at !== null || !canProve(deps)) return undefined;
  const tokens = readTokens(deps.box, portal);
  const now = deps.clock.now().getTime();
  const verdict = tokens
    ? await askOAuthServer(deps, {
        serverEndpoint: portal.server_endpoint ?? '',
        refreshToken: tokens.refreshToken,
        memberId: portal.member_id,
        domain: portal.domain,
      })
    : ({ kind: 'refused', detail: 'no stored tokens' } as const);
  if (verdict.kind === 'unavailable') throw oauthUnavailable(verdict.detail);
  if (verdict.kind === 'confirmed') {
    await updatePortal(deps.db, portal.id, {
      ...tokenColumns(
        deps.box,
        {
          accessToken: verdict.answer.access_token,
          refreshToken: verdict.answer.refresh_token,
          expiresInSec: Number(verdict.answer.expires_in) || undefined,
        },
        now,
      ),
      install_confirmed_at: now,
      updated_at: now,
    });
    deps.portals.invalidate(portal.member_id);
    deps.logger.info({ memberId: portal.member_id }, 'install confirmed by the OAuth server');
    return 'install confirmed';
  }
  await updatePortal(deps.db, portal.id, {
    status: 'uninstalled',
    access_token_enc: null,
    refresh_token_enc: null,
    application_token_digest: null,
    uninstalled_at: now,
    updated_at: now,
  });
  deps.portals.invalidate(portal.member_id);
  await dropUnverified(deps, portal.id);
  deps.logger.error(
    { memberId: portal.member_id, domain: portal.domain, detail: verdict.detail },
    'install withdrawn: the OAuth server did not confirm it',
  );
  return `install withdrawn: ${verdict.detail}`;
}

/** The VERSION of an install delivery proven by its own tokens (proveInstall). */
function versionOf(event: EventRow): string | null {
  const v = dataOf(event).VERSION;
  return typeof v === 'string' || typeof v === 'number' ? String(v) : null;
}

/**
 * The app's version as the portal reports it: `app.info` VERSION, "the installed version of
 * the application" (DOCS:api-reference/common/system/app-info.md). A delivery verified by the
 * application token alone does not vouch for its VERSION: Bitrix24 posts that token into every
 * user's app frame, so any user can post an ONAPPUPDATE or ONAPPINSTALL claiming any version.
 * Null, and the stored version kept, when the portal does not say (a webhook connection is
 * answered SCOPE and LICENSE only) or cannot be asked now: the version is shown, not acted on,
 * so it is not worth a retry.
 */
async function installedVersion(deps: Deps, portal: PortalRow): Promise<string | null> {
  if (portal.auth_mode === 'webhook' || !portal.access_token_enc) return null;
  try {
    // The call reads the portal's row afresh (tokens a confirmation or re-sync just renewed).
    const info = await deps.bitrix.call<{ VERSION?: unknown }>(portal, 'app.info', {});
    const v = info?.VERSION;
    return typeof v === 'string' || typeof v === 'number' ? String(v) : null;
  } catch (e) {
    deps.logger.warn(
      { memberId: portal.member_id, err: (e as Error)?.message },
      'app version not read from the portal; the stored one is kept',
    );
    return null;
  }
}

/** How soon an uninstall the portal does not confirm yet is looked at again. */
export const UNINSTALL_RECHECK_MS = 60_000;

/**
 * Whether the portal still answers the app's own credentials (`app.info` with the stored
 * token, refreshed when expired). Bitrix24 withdraws the app's REST access with an uninstall
 * (https://apidocs.bitrix24.com/api-reference/common/events/on-app-uninstall.html), while the
 * application token that verifies an ONAPPUNINSTALL is also posted into every user's app
 * frame (APPLICATION_TOKEN): any user of the portal can read it and forge the uninstall, so
 * the token alone does not prove it. A portal whose credentials cannot show it either way
 * (a webhook connection, none stored, the app unknown to the OAuth server or waiting for
 * re-authorisation) is taken at its word; the portal not answering now is asked again later.
 * A portal whose plan refuses the app (`payment_required`, at a refresh or a call) cannot
 * show it either, but its credentials are not refused: the uninstall waits with its events
 * until the pause ends one way or the other (renewed: still installed; the app removed: the
 * refresh answers invalid_client).
 */
async function stillInstalled(deps: Deps, portal: PortalRow): Promise<boolean> {
  if (
    portal.auth_mode === 'webhook' ||
    portal.status !== 'installed' ||
    portal.pause_reason === 'invalid_client' ||
    !portal.access_token_enc
  ) {
    return false;
  }
  try {
    await deps.bitrix.call(portal, 'app.info', {});
    return true;
  } catch (e) {
    // The refresh token refused (invalid_grant), or the app unknown to the OAuth server for
    // this portal (invalid_client, "the application may not be installed in Bitrix24",
    // b24restdocs api-reference/oauth/error-codes.md): what an uninstall does to them.
    if (e instanceof PausedError) {
      const fresh = await findPortalById(deps.db, portal.id);
      if (fresh?.status === 'needs_reauth' || fresh?.pause_reason === 'invalid_client') {
        return false;
      }
      throw e;
    }
    if (e instanceof RetryableError) throw e;
    if (isBitrixApiError(e) && e.retryable) throw e;
    return false;
  }
}

/**
 * An uninstalled portal's deliveries that wait for proof of its token: nothing will prove
 * them now (its deliveries are refused, so no proof job comes), and they kept a user's
 * delivered tokens (`auth_enc`) and their place in the backlog for good. Rejected, tokens
 * erased, listed as `portal_uninstalled`.
 */
async function dropUnverified(deps: Deps, portalId: number): Promise<number> {
  const now = deps.clock.now().getTime();
  return expireUnverified(deps.db, portalId, Number.MAX_SAFE_INTEGER, now, 'portal_uninstalled');
}

async function uninstall(deps: Deps, portal: PortalRow, event: EventRow) {
  const now = deps.clock.now().getTime();
  const clean = String(dataOf(event).CLEAN ?? '0') === '1';
  // The credentials go with any uninstall: Bitrix24 withdraws the app's REST access with it
  // (https://apidocs.bitrix24.com/api-reference/common/events/on-app-uninstall.html), so they
  // can only leak, never serve. A reinstall brings new ones; the rules and log stay unless
  // CLEAN asked otherwise.
  await markPortalUninstalled(deps.db, portal.id, now);
  // Deliveries are refused from here on (uninstalled), before the rows go.
  deps.portals.invalidate(portal.member_id);
  await dropUnverified(deps, portal.id);
  deps.logger.info({ memberId: portal.member_id, clean }, 'portal uninstalled');
  // "Delete app data" (data[CLEAN]=1): nothing of the portal stays, this very event included.
  if (clean) await erasePortalEntirely(deps, portal, event.id);
}

/** Whether a later ONAPPUPDATE of this portal waits to be processed (index events_portal_event_id). */
async function laterUpdateWaiting(
  deps: Deps,
  portal: PortalRow,
  event: EventRow,
): Promise<boolean> {
  const later = await deps
    .db('events')
    .where({ portal_id: portal.id, event: 'ONAPPUPDATE' })
    .where('id', '>', event.id)
    // Verified ones only: an unverified one may yet be rejected as forged.
    .whereIn('status', ['received', 'processing'])
    .first('id');
  return later !== undefined;
}

/**
 * Job handler for `lifecycle` jobs (ONAPPINSTALL, ONAPPUPDATE, ONAPPUNINSTALL, ONAPPTEST),
 * dispatched by the worker. Unverified installs are proven first; updates re-bind what is
 * missing (an update deletes the app's ONAPPINSTALL binding: CORE:classes/general/
 * rest_util.php `CRestUtil::UpdateApp`); uninstalls only arrive here verified by
 * application_token.
 */
export const lifecycleHandler: JobHandler = async ({ deps, event, job, attempt }) => {
  if (!event) {
    const owner = job.portal_id === null ? undefined : await findPortalById(deps.db, job.portal_id);
    if (owner && job.entity_key === proofJobKey(owner.id)) {
      return proofRound(deps, { ...job, attempts: attempt }, owner);
    }
    throw new PermanentError('a lifecycle job needs an event');
  }
  const portal =
    event.portal_id === null ? undefined : await findPortalById(deps.db, event.portal_id);
  if (!portal) throw new PermanentError(`event ${event.id} has no stored portal`);
  // A job queued for one unverified install (before proof jobs per portal): prove them all.
  if (event.status === 'unverified') {
    const round = await proveInstalls(deps, portal);
    if (round.againInMs !== undefined) throw new PausedError(round.note, round.againInMs);
    return { note: round.note };
  }
  if (portal.status === 'uninstalled' && event.event !== 'ONAPPUNINSTALL') {
    return { eventStatus: 'skipped', note: 'portal is uninstalled' };
  }
  switch (event.event) {
    case 'ONAPPINSTALL': {
      const confirmed = await confirmInstall(deps, portal);
      if (confirmed?.startsWith('install withdrawn')) {
        return { eventStatus: 'skipped', note: confirmed };
      }
      const v = await installedVersion(deps, portal);
      if (v !== null && v !== portal.app_version) {
        await updatePortal(deps.db, portal.id, {
          app_version: v,
          updated_at: deps.clock.now().getTime(),
        });
      }
      return { eventStatus: 'processed' };
    }
    case 'ONAPPUPDATE': {
      // Every user of the portal can read the application token (Bitrix24 posts it into each
      // frame), so a flood of these passes the intake's check; each would re-sync the
      // bindings through the portal's REST budget. Of those waiting, only the last re-syncs.
      if (await laterUpdateWaiting(deps, portal, event)) {
        return { eventStatus: 'skipped', note: 'superseded by a later update' };
      }
      const sync = await syncBindings(deps, portal);
      await updatePortal(deps.db, portal.id, {
        app_version: (await installedVersion(deps, portal)) ?? portal.app_version,
        updated_at: deps.clock.now().getTime(),
      });
      deps.portals.invalidate(portal.member_id);
      return {
        eventStatus: 'processed',
        note: sync.failed.length
          ? `refused: ${sync.failed.map((f) => f.name).join(', ')}`
          : undefined,
      };
    }
    case 'ONAPPTEST':
      // The delivery the app asked for, verified: the token it would prove is known already.
      return { eventStatus: 'processed', note: 'test delivery' };
    case 'ONAPPUNINSTALL':
      // Installed again after this uninstall arrived (the job waited in a backlog or for a
      // retry): the portal's current install, and its new credentials, are not this
      // uninstall's to remove.
      if (portal.installed_at !== null && portal.installed_at > event.received_at) {
        return { eventStatus: 'skipped', note: 'superseded by a later install' };
      }
      if (await stillInstalled(deps, portal)) {
        // Not retried forever: after MAX_ATTEMPTS the event fails and the portal stays.
        throw new RetryableError(
          'the portal still accepts the app’s credentials, so this uninstall is not confirmed (yet)',
          { retryAfterMs: UNINSTALL_RECHECK_MS },
        );
      }
      await uninstall(deps, portal, event);
      return { eventStatus: 'processed' };
    default:
      return { eventStatus: 'skipped', note: `${event.event} is not a lifecycle event` };
  }
};
