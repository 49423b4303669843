import { createHash } from 'node:crypto';
import { fireEvent } from './event-delivery.js';
import { postOnce, randomHex } from './http-util.js';
import { encodePhpForm } from './php-form.js';
import { findUser, firstAdminId, type PortalState } from './state.js';
import type { DeliveryRecord, HttpResponseSummary, InstallOptions, UserAuth } from './types.js';

export function issueUserAuth(
  portal: PortalState,
  userId: number,
  clientId = portal.ctx.clientId,
): UserAuth {
  const issued = portal.ctx.tokens.issue(portal.memberId, userId, clientId);
  return {
    accessToken: issued.accessToken,
    refreshToken: issued.refreshToken,
    expiresIn: issued.expiresIn,
    expires: issued.expires,
    // Per portal and app (CRestUtil::getApplicationToken): another app has its own.
    applicationToken:
      clientId === portal.ctx.clientId
        ? portal.applicationToken
        : createHash('md5').update(`${portal.memberId}|${clientId}`).digest('hex'),
    memberId: portal.memberId,
    domain: portal.domain,
    serverEndpoint: portal.ctx.serverEndpoint,
    clientEndpoint: portal.clientEndpoint,
    scope: portal.scope,
    status: portal.status,
    userId,
  };
}

/**
 * What Bitrix24 POSTs into an app frame (DOCS:settings/oauth/simple-way.md), plus what the parent
 * page keeps.
 */
export interface FrameForm {
  action: string;
  fields: Array<[string, string]>;
  /** `DOMAIN|PROTOCOL|APP_SID`: the iframe name b24jssdk parses. */
  frameName: string;
  appSid: string;
  /** The answer to the frame's `getInitData` message. */
  initData: Record<string, unknown>;
}

/** What the older installer POST lacks (see InstallOptions.form for the source). */
const LEGACY_OMITS = new Set(['SERVER_ENDPOINT', 'APPLICATION_TOKEN', 'APPLICATION_SCOPE']);

export interface FrameFormOptions {
  handlerUrl: string;
  userId: number;
  placement: string;
  placementOptions: Record<string, unknown>;
  /** Installer phase: `INSTALL` true in the init data. */
  installing: boolean;
  /** The older POST without SERVER_ENDPOINT, APPLICATION_TOKEN, APPLICATION_SCOPE. */
  legacy?: boolean;
}

export function buildFrameForm(portal: PortalState, opts: FrameFormOptions): FrameForm {
  const auth = issueUserAuth(portal, opts.userId);
  const appSid = randomHex(16);
  const query = encodePhpForm([
    ['DOMAIN', portal.domain],
    ['PROTOCOL', '0'],
    ['LANG', portal.lang],
    ['APP_SID', appSid],
  ]);
  const placementOptions = JSON.stringify(opts.placementOptions);
  const fields: Array<[string, string]> = [
    ['AUTH_ID', auth.accessToken],
    ['AUTH_EXPIRES', String(auth.expiresIn)],
    ['REFRESH_ID', auth.refreshToken],
    ['SERVER_ENDPOINT', auth.serverEndpoint],
    ['member_id', portal.memberId],
    ['status', portal.status],
    ['PLACEMENT', opts.placement],
    ['PLACEMENT_OPTIONS', placementOptions],
    ['APPLICATION_TOKEN', portal.applicationToken],
    ['APPLICATION_SCOPE', portal.scope],
  ];
  return {
    action: `${opts.handlerUrl}${opts.handlerUrl.includes('?') ? '&' : '?'}${query}`,
    fields: opts.legacy ? fields.filter(([k]) => !LEGACY_OMITS.has(k)) : fields,
    frameName: `${portal.domain}|0|${appSid}`,
    appSid,
    initData: {
      DOMAIN: portal.domain,
      PROTOCOL: 0,
      LANG: portal.lang,
      PATH: new URL(opts.handlerUrl).pathname,
      AUTH_ID: auth.accessToken,
      AUTH_EXPIRES: auth.expiresIn,
      REFRESH_ID: auth.refreshToken,
      MEMBER_ID: portal.memberId,
      IS_ADMIN: findUser(portal, opts.userId)?.admin ?? false,
      PLACEMENT: opts.placement,
      PLACEMENT_OPTIONS: opts.placementOptions,
      INSTALL: opts.installing,
      FIRST_RUN: false,
      APP_OPTIONS: {},
      USER_OPTIONS: {},
    },
  };
}

/** Joins the app's base URL and a handler path without doubling the slash. */
export function appHandlerUrl(appUrl: string, path: string): string {
  return `${appUrl.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

export async function install(
  portal: PortalState,
  opts: InstallOptions,
): Promise<HttpResponseSummary> {
  const appUrl = opts.appUrl ?? portal.app?.appUrl;
  if (!appUrl) throw new Error('install(): no appUrl given and setApp() was not called');
  const installPath = opts.installPath ?? portal.app?.installPath ?? '/install';
  portal.app = { appPath: '/app', ...portal.app, appUrl, installPath };
  const userId = opts.userId ?? firstAdminId(portal);
  if (portal.installState !== 'installed') portal.installState = 'installing';
  portal.installerUserId = userId;
  const form = buildFrameForm(portal, {
    handlerUrl: appHandlerUrl(appUrl, installPath),
    userId,
    placement: opts.placement ?? 'DEFAULT',
    placementOptions: opts.placementOptions ?? {},
    installing: true,
    legacy: opts.form === 'legacy',
  });
  return postOnce({
    url: form.action,
    body: encodePhpForm(form.fields),
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      'User-Agent': 'Mozilla/5.0 (Bitrix24 emulator)',
      Origin: portal.url,
      Referer: `${portal.url}/app`,
    },
    timeoutMs: portal.deliveryTimeoutMs,
    signal: portal.aborter.signal,
  });
}

/**
 * What `BX24.installFinish()` causes: the app counts as installed and ONAPPINSTALL goes out;
 * after a marketplace update, ONAPPUPDATE too (marketplaceUpdate).
 */
export async function finishInstall(portal: PortalState): Promise<DeliveryRecord[]> {
  if (portal.installState === 'installed') return [];
  portal.installState = 'installed';
  const records = await fireEvent(
    portal,
    'ONAPPINSTALL',
    { VERSION: String(portal.appVersion), ACTIVE: 'Y', INSTALLED: 'Y', LANGUAGE_ID: portal.lang },
    portal.installerUserId,
  );
  const update = portal.pendingUpdate;
  if (!update) return records;
  portal.pendingUpdate = undefined;
  return [...records, ...(await fireEvent(portal, 'ONAPPUPDATE', update, portal.installerUserId))];
}

/**
 * An app update: CORE:classes/general/rest_util.php `CRestUtil::UpdateApp` fires
 * OnRestAppUpdate (ONAPPUPDATE to the app's bindings of it), then
 * `EventTable::deleteAppInstaller` (CORE:lib/event.php) deletes the app's ONAPPINSTALL
 * binding only: its other bindings stay. (Everything goes only with an uninstall,
 * `CleanApp` → `deleteByApp`.) DOCS:api-reference/events/event-bind.md's "its actions will
 * be removed" is read as that. The event goes first and the binding after, as in the core;
 * its payload is VERSION, PREVIOUS_VERSION and LANGUAGE_ID (CORE:classes/general/
 * rest_provider.php `OnAppEvent`; DOCS:api-reference/common/events/on-app-update.md). The
 * marketplace's own update is marketplaceUpdate below.
 */
export async function update(portal: PortalState, newVersion: number): Promise<DeliveryRecord[]> {
  const previous = portal.appVersion;
  portal.appVersion = newVersion;
  const records = await fireEvent(
    portal,
    'ONAPPUPDATE',
    { VERSION: String(newVersion), PREVIOUS_VERSION: String(previous), LANGUAGE_ID: portal.lang },
    firstAdminId(portal),
  );
  portal.bindings = portal.bindings.filter((b) => b.event !== 'ONAPPINSTALL');
  return records;
}

/**
 * A new version installed from the marketplace over the old one. CORE:lib/marketplace/
 * application.php `Application::install` updates the app's row (`AppTable::update`: the new
 * VERSION; INSTALLED=N for an app with an install page, so the admin is shown the installer
 * again and, until BX24.installFinish(), the app gets no events:
 * DOCS:settings/app-installation/installation-finish.md), deletes no binding, and runs
 * `AppTable::install` (OnRestAppInstall: ONAPPINSTALL, delivered once installed).
 * DOCS:api-reference/common/events/on-app-update.md: ONAPPUPDATE is sent "after a new version
 * of the application is installed", with VERSION, PREVIOUS_VERSION, LANGUAGE_ID and the
 * usual `auth` (tokens included: sendRefreshToken, CORE:classes/general/rest_provider.php).
 * So here: an app with an install page gets ONAPPINSTALL and then ONAPPUPDATE when the
 * installer finishes (the order of the two is not documented); one without gets ONAPPUPDATE
 * at once.
 */
export async function marketplaceUpdate(
  portal: PortalState,
  newVersion: number,
): Promise<DeliveryRecord[]> {
  const update = {
    VERSION: String(newVersion),
    PREVIOUS_VERSION: String(portal.appVersion),
    LANGUAGE_ID: portal.lang,
  };
  portal.appVersion = newVersion;
  if (portal.app?.installPath) {
    portal.installState = 'installing';
    portal.pendingUpdate = update;
    return [];
  }
  return fireEvent(portal, 'ONAPPUPDATE', update, firstAdminId(portal));
}

/** ONAPPUNINSTALL (no tokens), then bindings, placements and tokens are gone. */
export async function uninstall(portal: PortalState, clean: boolean): Promise<DeliveryRecord[]> {
  const records = await fireEvent(
    portal,
    'ONAPPUNINSTALL',
    { LANGUAGE_ID: portal.lang, CLEAN: clean ? 1 : 0 },
    null,
  );
  portal.bindings = [];
  portal.placements = [];
  portal.ctx.tokens.revokeAll(portal.memberId);
  portal.installState = 'uninstalled';
  return records;
}
