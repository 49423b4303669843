import type { EntityStore } from './crm-store.js';
import type { ItemStore } from './item-store.js';
import type { TaskStore } from './task-store.js';
import type { OfflineQueue } from './offline-queue.js';
import type { OperatingState } from './operating-limit.js';
import type { LeakyBucket } from './rate-limit.js';
import type { TokenStore } from './token-store.js';
import type {
  AppSettings,
  AppStatus,
  DeliveryRecord,
  EmulatedUser,
  EventBinding,
  FailureSpec,
  InstallState,
  OAuthCallRecord,
  OutgoingWebhook,
  PlacementBinding,
  RestCallRecord,
  TimelineComment,
} from './types.js';

/** Emulator-wide state shared by the OAuth server and every portal (internal). */
export interface EmulatorContext {
  clientId: string;
  clientSecret: string;
  accessTokenTtlSec: number;
  now: () => number;
  /** Set once the OAuth listener is up. */
  oauthUrl: string;
  serverEndpoint: string;
  tokens: TokenStore;
  oauthCalls: OAuthCallRecord[];
  /** Failures the token endpoint answers next, one per request (see failNextToken). */
  oauthFailures: FailureSpec[];
  /** Run (and awaited) before the next token requests are answered, one each (a test's fault). */
  beforeNextToken: Array<() => Promise<void>>;
  portals: Map<string, PortalState>;
}

/** One portal's mutable state (internal; tests use the EmulatedPortal facade). */
export interface PortalState {
  ctx: EmulatorContext;
  memberId: string;
  domain: string;
  /** `127.0.0.1:PORT`, where the listener is (differs from `domain` when one was given). */
  address: string;
  url: string;
  clientEndpoint: string;
  applicationToken: string;
  scope: string;
  status: AppStatus;
  appVersion: number;
  installState: InstallState;
  /** The admin who ran the installer; ONAPPINSTALL carries this user's token. */
  installerUserId: number;
  /**
   * A marketplace update waiting for the installer to finish: the ONAPPUPDATE `data` that
   * goes out with BX24.installFinish() (portal-lifecycle.ts marketplaceUpdate).
   */
  pendingUpdate?: { VERSION: string; PREVIOUS_VERSION: string; LANGUAGE_ID: string };
  app: AppSettings | null;
  users: EmulatedUser[];
  bindings: EventBinding[];
  placements: PlacementBinding[];
  /**
   * Offline event records (DOCS:api-reference/events/offline-events.md).
   */
  offline: OfflineQueue;
  calls: RestCallRecord[];
  deliveries: DeliveryRecord[];
  deals: EntityStore;
  leads: EntityStore;
  /** CRM activities (calls, meetings, e-mails): crm.activity.*. */
  activities: EntityStore;
  contacts: EntityStore;
  companies: EntityStore;
  /** Quotes (estimates): crm.quote.*. */
  quotes: EntityStore;
  /** Old invoices (not the new ones, which are crm.item.* of type 31): crm.invoice.*. */
  invoices: EntityStore;
  /** Smart-process items, by entityTypeId. */
  items: ItemStore;
  tasks: TaskStore;
  timeline: TimelineComment[];
  bucket: LeakyBucket;
  /** Per-method operating time (DOCS:limits.md). */
  operating: OperatingState;
  /**
   * What the OAuth server answers to this portal's refresh grants instead of new tokens:
   * `invalid_client` ("the application may not be installed", DOCS:settings/oauth/error-codes.md)
   * or `PAYMENT_REQUIRED` (trial or subscription expired, same page). null: refresh
   * normally.
   */
  refreshFailure: 'invalid_client' | 'PAYMENT_REQUIRED' | null;
  /**
   * The portal's subscription has ended: every REST call is refused, a valid token's with 401
   * `PAYMENT_REQUIRED` "Subscription has been ended" (bitrix24/b24pysdk b24pysdk/errors
   * `BitrixAPIPaymentRequired`, a 401 type; its tests/integration/errors/test_errors.py
   * `test_error_bitrix_api_payment_required` calls `profile`), an inbound webhook's with 401
   * `ACCESS_DENIED` "REST is available only by subscription" (DOCS:_includes/system-errors.md).
   */
  subscriptionEnded: boolean;
  failures: Map<string, FailureSpec[]>;
  /** A delay (ms) the next call of a method waits before it is answered (delayNext). */
  delays: Map<string, number>;
  /** What every REST request waits before it is handled (setLatency). */
  latencyMs: number;
  /** Inbound webhook secret → user id. */
  inboundWebhooks: Map<string, number>;
  outgoingWebhooks: OutgoingWebhook[];
  /** Shared id sequence for bindings, placements and webhooks. */
  nextId(): number;
  deliveryTimeoutMs: number;
  /** `LANG` / `LANGUAGE_ID` (PortalOptions.lang). */
  lang: string;
  /** Deliveries started by REST calls, which answer before delivering (as Bitrix24 queues). */
  pending: Set<Promise<unknown>>;
  aborter: AbortController;
  /** Moves the portal to a new address (portal.ts); resolves with the new domain. */
  rename: () => Promise<string>;
}

export function findUser(portal: PortalState, userId: number): EmulatedUser | undefined {
  return portal.users.find((u) => u.id === userId);
}

export function firstAdminId(portal: PortalState): number {
  return portal.users.find((u) => u.admin)?.id ?? portal.users[0]?.id ?? 1;
}

/**
 * Every secret the emulator handed out: access and refresh tokens, each portal's
 * application token, inbound-webhook secrets and outgoing-webhook application tokens (the
 * reliability suite scans logs, pages and data files for them).
 */
export function issuedSecrets(ctx: EmulatorContext): string[] {
  const out = ctx.tokens.issued();
  for (const p of ctx.portals.values()) {
    out.push(p.applicationToken, ...p.inboundWebhooks.keys());
    for (const hook of p.outgoingWebhooks) out.push(hook.applicationToken);
  }
  return out;
}
