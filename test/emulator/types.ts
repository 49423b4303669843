/**
 * Public types of the Bitrix24 emulator. Shapes follow the b24restdocs pages cited where each
 * is produced; where a field mirrors something Bitrix24 sends, its Bitrix24 name is given.
 */

/** A user of the emulated portal. */
export interface EmulatedUser {
  id: number;
  /** Portal administrator (`profile.ADMIN`, `user.admin`). */
  admin: boolean;
  name: string;
  lastName?: string;
  email?: string;
  /**
   * `profile` TIME_ZONE (`Europe/Berlin`); unset users get an empty string, as Bitrix24
   * answers for a user without one (b24restdocs api-reference/common/users/profile.md).
   */
  timeZone?: string;
  /** A dismissed user is not active (user.get FILTER ACTIVE=true leaves it out). @default true */
  active?: boolean;
}

/** App status letter sent as `status` / `auth[status]`: L local, F free, D demo, T trial, P paid. */
export type AppStatus = 'L' | 'F' | 'D' | 'T' | 'P';

/** Where the app stands on this portal. `new`: never opened; `installing`: installer shown,
 * `BX24.installFinish()` not yet called; `installed`; `uninstalled`. */
export type InstallState = 'new' | 'installing' | 'installed' | 'uninstalled';

export interface EmulatorOptions {
  clientId: string;
  clientSecret: string;
  /** Lifetime of issued access tokens. @default 3600 */
  accessTokenTtlSec?: number;
  /** Clock in milliseconds; tokens, `ts`, rate limiting and dates all read it. @default Date.now */
  now?: () => number;
  /** Port of the OAuth server listener. @default 0 (any free port) */
  oauthPort?: number;
}

export interface PortalOptions {
  /** 32 hex characters. @default random */
  memberId?: string;
  /** @default [{id:1, admin:true, name:'Admin'}, {id:2, admin:false, name:'Manager'}] */
  users?: EmulatedUser[];
  /** App status (`status`). @default 'L' */
  plan?: AppStatus;
  /** Installed app version (`app.info` VERSION, ONAPPINSTALL VERSION). @default 1 */
  appVersion?: number;
  /**
   * Scopes of the installed app, comma-separated (the app form's list: manifest.json's).
   * @default 'crm,placement,user_brief,task'
   */
  scope?: string;
  /** Port of this portal's listener. @default 0 (any free port) */
  port?: number;
  /**
   * The portal's address as Bitrix24 names it (DOMAIN, `auth[domain]`, `client_endpoint`),
   * e.g. a cloud name `acme.bitrix24.kr`. The listener stays on 127.0.0.1 (`address`): whoever
   * calls the portal by this name maps it there, as a resolver would. @default `127.0.0.1:PORT`
   */
  domain?: string;
  /** Start with the app already installed (as if installFinish had run). @default false */
  installed?: boolean;
  /** Per-delivery timeout. @default 10000 */
  deliveryTimeoutMs?: number;
  /**
   * The portal's language: `LANG` of frame and installer POSTs and `LANGUAGE_ID` of the app
   * lifecycle events (DOCS:api-reference/common/events/on-app-install.md). @default 'en'
   */
  lang?: string;
  /**
   * The plan has source keys (`rest_auth_connector`: Pro and above, DOCS
   * api-reference/events/offline-events.md); without them a request with `auth_connector` is
   * refused. @default true
   */
  sourceKeys?: boolean;
}

/** What a user's browser session in Bitrix24 holds (the iframe POST, in camelCase). */
export interface UserAuth {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  /** Unix seconds. */
  expires: number;
  applicationToken: string;
  memberId: string;
  domain: string;
  serverEndpoint: string;
  clientEndpoint: string;
  scope: string;
  status: AppStatus;
  userId: number;
}

export interface OAuthCallRecord {
  method: string;
  grantType: string | null;
  clientId: string | null;
  clientSecretOk: boolean;
  refreshToken: string | null;
  status: number;
  at: number;
}

export interface RestCallRecord {
  /** Lower-cased method name. */
  method: string;
  /** Parameters as parsed, without `auth` and the SDK's `bx24_*` telemetry. */
  params: Record<string, unknown>;
  /** The access token used, or null (webhook or none). */
  auth: string | null;
  via: 'oauth' | 'webhook';
  userId: number | null;
  status: number;
  error?: string;
  /** True for a command run inside `batch`. */
  inBatch?: boolean;
  at: number;
}

export interface DeliveryRecord {
  event: string;
  handler: string;
  eventHandlerId: number;
  /** HTTP status, or 0 on a network error or timeout. */
  status: number;
  /** The exact form-encoded body sent. */
  body: string;
  responseBody?: string;
  error?: string;
  at: number;
  durationMs: number;
}

export interface EventBinding {
  id: number;
  event: string;
  handler: string;
  /** User id whose token goes into `auth`; 0 = the user who triggered the event. */
  authType: number;
  eventType: 'online' | 'offline';
  connectorId: string;
  options: Record<string, unknown>;
  /** Who called `event.bind`. */
  boundBy: number;
}

export interface PlacementBinding {
  id: number;
  placement: string;
  handler: string;
  title: string;
  description: string;
  groupName: string;
  options: Record<string, unknown>;
  userId: number;
}

export interface OutgoingWebhook {
  id: number;
  handler: string;
  events: string[];
  applicationToken: string;
}

/** A CRM record as REST returns it: string values, `ID` a string, multi-fields as arrays. */
export type CrmItem = Record<string, unknown> & { ID: string };

export interface MultiFieldValue {
  ID: string;
  VALUE_TYPE: string;
  VALUE: string;
  TYPE_ID: string;
}

export interface TimelineComment {
  ID: string;
  ENTITY_ID: string;
  ENTITY_TYPE: string;
  COMMENT: string;
  AUTHOR_ID: string;
  CREATED: string;
}

/** Who caused a change: a user id, or null for a robot / automation (event `auth` has no tokens). */
export interface TriggerOptions {
  userId?: number | null;
  robot?: boolean;
}

export interface EntityChange {
  id: string;
  item: CrmItem | null;
  deliveries: DeliveryRecord[];
}

/** A smart-process item changed through the portal (`crm.item.*` shape, camelCase). */
export interface ItemChange {
  id: string;
  item: Record<string, unknown>;
  /** Empty when an update changed nothing (no save, so no event). */
  deliveries: DeliveryRecord[];
}

/** A task changed through the portal (`tasks.task.get` shape, camelCase). */
export interface TaskChange {
  id: string;
  task: Record<string, unknown>;
  deliveries: DeliveryRecord[];
}

export interface InstallOptions {
  appUrl?: string;
  installPath?: string;
  userId?: number;
  placement?: string;
  placementOptions?: Record<string, unknown>;
  /**
   * Which installer POST the portal sends. `current`: the form documented since 2026, with
   * SERVER_ENDPOINT, APPLICATION_TOKEN and APPLICATION_SCOPE. `legacy`: the form of older
   * docs and of a real portal's captured install request, which has none of the three
   * (bitrix24/b24phpsdk: tests/Unit/Application/Requests/Placement/PlacementRequestTest.php,
   * the "install placement" request: AUTH_ID, AUTH_EXPIRES, REFRESH_ID, member_id, status,
   * PLACEMENT, PLACEMENT_OPTIONS only). @default 'current'
   */
  form?: 'current' | 'legacy';
}

export interface HttpResponseSummary {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface AppSettings {
  appUrl: string;
  /** Path of the app page (`handlers.app`). @default '/app' */
  appPath?: string;
  /** Path of the installer (`handlers.install`). @default '/install' */
  installPath?: string;
}

export interface RateLimitOptions {
  enabled: boolean;
  /** @default 2 */
  drainPerSec?: number;
  /** @default 50 */
  burst?: number;
}

export interface FailureSpec {
  status: number;
  error: string;
  description?: string;
}
