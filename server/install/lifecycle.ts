import type { Deps } from '../deps.js';
import { safeEqual } from '../lib/crypto.js';
import { resolveUnverified } from '../intake/reverify.js';
import { PermanentError } from '../queue/errors.js';
import type { JobHandler } from '../queue/types.js';
import { updateEvent, type EventRow } from '../../db/stores/events.js';
import { erasePortalData } from '../../db/stores/portal-data.js';
import { findPortalById, updatePortal, type PortalRow } from '../../db/stores/portals.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { NotAllowedHostError } from '../bitrix/errors.js';
import { tokenColumns } from '../bitrix/oauth.js';
import { syncBindings } from './bindings.js';

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
  await updateEvent(deps.db, event.id, {
    status: 'rejected',
    reject_reason: reason,
    auth_enc: null,
    processed_at: deps.clock.now().getTime(),
  });
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
}

/**
 * An ONAPPINSTALL whose application_token we did not know (or that differs from the stored
 * one): its access token must work on the STORED portal's client endpoint and belong to an
 * administrator before its application token is taken. Unproven, it is rejected and nothing
 * stored changes.
 */
async function proveInstall(deps: Deps, portal: PortalRow, event: EventRow) {
  if (event.event !== 'ONAPPINSTALL' || event.member_id !== portal.member_id) {
    return reject(deps, event, 'unprovable', `${event.event} cannot prove its own token`);
  }
  let tokens: DeliveredTokens;
  try {
    tokens = JSON.parse(deps.box.decrypt(event.auth_enc ?? '')) as DeliveredTokens;
  } catch {
    return reject(deps, event, 'unprovable', 'no delivered tokens kept');
  }
  if (!tokens.access_token || !tokens.application_token) {
    return reject(deps, event, 'unprovable', 'the delivery carried no access token');
  }
  const target = {
    memberId: portal.member_id,
    domain: portal.domain,
    clientEndpoint: portal.client_endpoint ?? `https://${portal.domain}/rest/`,
  };
  let profile: { ID?: unknown; ADMIN?: unknown };
  try {
    profile = await deps.bitrix.probe(target, { accessToken: tokens.access_token }, 'profile');
  } catch (e) {
    if ((isBitrixApiError(e) && !e.retryable) || e instanceof NotAllowedHostError) {
      return reject(deps, event, 'token_unproven', (e as Error).message);
    }
    throw e;
  }
  if (profile.ADMIN !== true && profile.ADMIN !== 'Y') {
    return reject(deps, event, 'token_unproven', 'the token is not an administrator’s');
  }
  const now = deps.clock.now().getTime();
  const digest = deps.box.digest(tokens.application_token);
  const same =
    portal.application_token_digest !== null && safeEqual(digest, portal.application_token_digest);
  // Proven tokens fill in a portal that has none (or lost them); stored ones are kept.
  const adoptTokens =
    tokens.refresh_token !== undefined &&
    (!portal.access_token_enc || portal.status === 'needs_reauth');
  await deps.db.transaction(async (trx) => {
    await updatePortal(trx, portal.id, {
      application_token_digest: digest,
      ...(adoptTokens
        ? {
            ...tokenColumns(
              deps.box,
              {
                accessToken: tokens.access_token!,
                refreshToken: tokens.refresh_token!,
                expiresInSec: Number(tokens.expires_in) || undefined,
              },
              now,
            ),
            status: 'installed' as const,
          }
        : {}),
      app_version: versionOf(event) ?? portal.app_version,
      updated_at: now,
    });
    await updateEvent(trx, event.id, { status: 'processed', auth_enc: null, processed_at: now });
  });
  deps.portals.invalidate(portal.member_id);
  deps.logger.info(
    { memberId: portal.member_id, replaced: !same && portal.application_token_digest !== null },
    'application token proven by ONAPPINSTALL',
  );
  await resolveUnverified(deps, portal.id);
  return { eventStatus: 'processed' as const };
}

function versionOf(event: EventRow): string | null {
  const v = dataOf(event).VERSION;
  return typeof v === 'string' || typeof v === 'number' ? String(v) : null;
}

async function uninstall(deps: Deps, portal: PortalRow, event: EventRow) {
  const now = deps.clock.now().getTime();
  const clean = String(dataOf(event).CLEAN ?? '0') === '1';
  await updatePortal(deps.db, portal.id, {
    status: 'uninstalled',
    uninstalled_at: now,
    events_bound: null,
    updated_at: now,
  });
  if (clean) await erasePortalData(deps.db, portal.id, now);
  deps.portals.invalidate(portal.member_id);
  deps.logger.info({ memberId: portal.member_id, clean }, 'portal uninstalled');
}

/**
 * Job handler for `lifecycle` jobs (ONAPPINSTALL, ONAPPUPDATE, ONAPPUNINSTALL), dispatched by
 * the worker. Unverified installs are proven first; updates re-bind everything (Bitrix24
 * drops the bindings on update); uninstalls only arrive here verified by application_token.
 */
export const lifecycleHandler: JobHandler = async ({ deps, event }) => {
  if (!event) throw new PermanentError('a lifecycle job needs an event');
  const portal =
    event.portal_id === null ? undefined : await findPortalById(deps.db, event.portal_id);
  if (!portal) throw new PermanentError(`event ${event.id} has no stored portal`);
  if (event.status === 'unverified') return proveInstall(deps, portal, event);
  if (portal.status === 'uninstalled' && event.event !== 'ONAPPUNINSTALL') {
    return { eventStatus: 'skipped', note: 'portal is uninstalled' };
  }
  switch (event.event) {
    case 'ONAPPINSTALL': {
      const v = versionOf(event);
      if (v !== null && v !== portal.app_version) {
        await updatePortal(deps.db, portal.id, {
          app_version: v,
          updated_at: deps.clock.now().getTime(),
        });
      }
      return { eventStatus: 'processed' };
    }
    case 'ONAPPUPDATE': {
      const sync = await syncBindings(deps, portal);
      await updatePortal(deps.db, portal.id, {
        app_version: versionOf(event) ?? portal.app_version,
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
    case 'ONAPPUNINSTALL':
      await uninstall(deps, portal, event);
      return { eventStatus: 'processed' };
    default:
      return { eventStatus: 'skipped', note: `${event.event} is not a lifecycle event` };
  }
};
