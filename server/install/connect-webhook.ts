import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import { resolveUnverified } from '../intake/reverify.js';
import {
  findPortalByMemberId,
  markPortalUninstalled,
  upsertPortal,
  type PortalRow,
} from '../../db/stores/portals.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { hostOf, isPortalHostAllowed } from '../bitrix/hosts.js';
import { chosenEvents, eventHandlerUrl } from './bindings.js';

export interface ConnectWebhookInput {
  /** Inbound webhook: `https://<portal>/rest/<user id>/<secret>/`. */
  webhookUrl: string;
  /** The outgoing webhook's application token (shown in Bitrix24's outgoing-webhook form). */
  applicationToken: string;
  /** The portal's member_id: events are matched to the portal by it. */
  memberId: string;
  /** When given, must equal the webhook URL's host. */
  domain?: string;
}

export interface WebhookConnection {
  portal: PortalRow;
  /** What to enter in Bitrix24's outgoing-webhook form. */
  handlerUrl: string;
  events: string[];
  userId: number | null;
}

export class ConnectRefusedError extends AppError {
  /** The input itself is wrong (a malformed URL or id), not the portal's or the config's answer. */
  readonly badInput: boolean;
  constructor(message: string, opts: { badInput?: boolean } = {}) {
    super('VALIDATION', message, { status: 400 });
    this.name = 'ConnectRefusedError';
    this.badInput = opts.badInput ?? false;
  }
}

const WEBHOOK_PATH = /^\/rest\/(\d+)\/([A-Za-z0-9]+)\/?$/;

/**
 * Inbound-webhook mode: a portal connected without the OAuth app. The webhook URL is
 * checked against the portal (`profile` must answer through it) before it is stored,
 * encrypted; events come from an outgoing webhook and are verified by its application
 * token exactly like OAuth portals' events. event.bind is not available to webhooks, so the
 * admin enters the handler URL and events in the outgoing-webhook form.
 */
export async function connectWebhook(
  deps: Deps,
  input: ConnectWebhookInput,
): Promise<WebhookConnection> {
  let url: URL;
  try {
    url = new URL(input.webhookUrl);
  } catch {
    throw new ConnectRefusedError('--webhook-url is not a URL', { badInput: true });
  }
  const m = WEBHOOK_PATH.exec(url.pathname);
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !m || url.search || url.hash) {
    throw new ConnectRefusedError(
      '--webhook-url must look like https://<portal>/rest/<user id>/<secret>/',
      { badInput: true },
    );
  }
  const webhookUrl = `${url.origin}/rest/${m[1]}/${m[2]}/`;
  const domain = hostOf(webhookUrl)!;
  if (input.domain !== undefined && input.domain.trim().toLowerCase() !== domain) {
    throw new ConnectRefusedError(
      `--domain ${input.domain} differs from the webhook's host ${domain}`,
      { badInput: true },
    );
  }
  if (!isPortalHostAllowed(deps.config, domain)) {
    throw new ConnectRefusedError(`${domain} is not in B24_PORTAL_HOSTS`);
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(input.memberId)) {
    throw new ConnectRefusedError('--member-id is malformed', { badInput: true });
  }
  if (!/^[\x21-\x7e]{8,512}$/.test(input.applicationToken)) {
    throw new ConnectRefusedError('--application-token is malformed', { badInput: true });
  }
  const existing = await findPortalByMemberId(deps.db, input.memberId);
  if (existing && existing.domain.toLowerCase() !== domain) {
    throw new ConnectRefusedError('this member_id is registered under another domain');
  }
  if (existing && existing.auth_mode === 'oauth' && existing.status !== 'uninstalled') {
    throw new ConnectRefusedError('this portal has the OAuth app installed; uninstall it first');
  }

  let profile: { ID?: unknown };
  try {
    profile = await deps.bitrix.probe(
      { memberId: input.memberId, domain, clientEndpoint: `${url.origin}/rest/` },
      { webhookUrl },
      'profile',
    );
  } catch (e) {
    if (isBitrixApiError(e))
      throw new ConnectRefusedError(`the portal refused the webhook: ${e.message}`);
    throw e;
  }
  // A webhook URL answers `profile` with the webhook user's record; anything else is not one.
  if (typeof profile !== 'object' || profile === null) {
    throw new ConnectRefusedError(
      'the address answered profile without a user record: it is not a Bitrix24 inbound webhook',
    );
  }
  const userId = Number(profile.ID);
  const events = await chosenEvents(deps, input.memberId);
  const now = deps.clock.now().getTime();
  const portal = await upsertPortal(deps.db, {
    member_id: input.memberId,
    domain,
    client_endpoint: `${url.origin}/rest/`,
    server_endpoint: null,
    status: 'installed',
    auth_mode: 'webhook',
    access_token_enc: null,
    refresh_token_enc: null,
    token_expires_at: null,
    webhook_url_enc: deps.box.encrypt(webhookUrl),
    application_token_digest: deps.box.digest(input.applicationToken),
    installed_by_user_id: Number.isInteger(userId) ? userId : null,
    events_bound: JSON.stringify(events),
    installed_at: now,
    uninstalled_at: null,
    updated_at: now,
  });
  deps.portals.invalidate(input.memberId);
  deps.logger.info({ memberId: input.memberId, domain }, 'portal connected by inbound webhook');
  await resolveUnverified(deps, portal.id);
  return {
    portal,
    handlerUrl: eventHandlerUrl(deps),
    events,
    userId: Number.isInteger(userId) ? userId : null,
  };
}

export type Disconnection = 'disconnected' | 'already';

/**
 * Undoes `connect-webhook` (a wrong member_id, a portal that moved to the OAuth app, a
 * webhook to withdraw): the portal becomes uninstalled as after an uninstall, and its webhook
 * URL and application token are forgotten, so its deliveries are refused from then on (every
 * server within the portal cache's 2 s). Its log and rules stay (`erase` removes them). A
 * portal with the OAuth app installed is refused: Bitrix24 uninstalls it.
 */
export async function disconnectWebhook(deps: Deps, portal: PortalRow): Promise<Disconnection> {
  if (portal.status === 'uninstalled') return 'already';
  if (portal.auth_mode !== 'webhook') {
    throw new ConnectRefusedError(
      `${portal.domain} has the OAuth app installed, not a webhook connection: uninstall the app in Bitrix24 to end it`,
    );
  }
  await markPortalUninstalled(deps.db, portal.id, deps.clock.now().getTime());
  deps.portals.invalidate(portal.member_id);
  deps.logger.info(
    { memberId: portal.member_id, domain: portal.domain },
    'portal disconnected: its inbound webhook and application token are forgotten',
  );
  return 'disconnected';
}
