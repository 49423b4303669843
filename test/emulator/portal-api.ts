import { activityMade, activityRebound, bindActivity } from './activity-bindings.js';
import type { EntityStore } from './crm-store.js';
import { fireEvent, triggerUser, whenIdle } from './event-delivery.js';
import type { OfflineRecord } from './offline-queue.js';
import { randomHex } from './http-util.js';
import { itemEventData, itemEventNames } from './rest-items.js';
import { invoiceEvents } from './rest-quote-invoice.js';
import { taskCommentAddData, taskEventData } from './rest-tasks.js';
import type { PhpValue } from './php-form.js';
import * as lifecycle from './portal-lifecycle.js';
import type { PortalState } from './state.js';
import type {
  AppSettings,
  CrmItem,
  DeliveryRecord,
  EmulatedUser,
  EntityChange,
  EventBinding,
  FailureSpec,
  HttpResponseSummary,
  InstallOptions,
  InstallState,
  ItemChange,
  OutgoingWebhook,
  PlacementBinding,
  RateLimitOptions,
  RestCallRecord,
  TaskChange,
  TimelineComment,
  TriggerOptions,
  UserAuth,
} from './types.js';

/** One emulated Bitrix24 portal with the app under test on it. */
export interface EmulatedPortal {
  readonly memberId: string;
  /** What Bitrix24 sends as DOMAIN / auth[domain]: `127.0.0.1:PORT` unless named otherwise. */
  readonly domain: string;
  /** `127.0.0.1:PORT`, where the portal's listener is (PortalOptions `domain`). */
  readonly address: string;
  readonly url: string;
  readonly clientEndpoint: string;
  readonly applicationToken: string;
  readonly users: readonly EmulatedUser[];
  readonly installState: InstallState;
  readonly appVersion: number;
  readonly deals: ReadonlyMap<string, CrmItem>;
  readonly contacts: ReadonlyMap<string, CrmItem>;
  readonly leads: ReadonlyMap<string, CrmItem>;
  readonly activities: ReadonlyMap<string, CrmItem>;
  readonly companies: ReadonlyMap<string, CrmItem>;
  readonly quotes: ReadonlyMap<string, CrmItem>;
  /** Old invoices (crm.invoice.*). */
  readonly invoices: ReadonlyMap<string, CrmItem>;
  /** Smart-process items of one type (`crm.item.get` shape), empty for an unused type. */
  itemsOf(entityTypeId: number): ReadonlyMap<string, Record<string, unknown>>;
  readonly tasks: ReadonlyMap<string, Record<string, unknown>>;
  readonly timeline: readonly TimelineComment[];
  readonly deliveries: readonly DeliveryRecord[];
  readonly calls: readonly RestCallRecord[];
  readonly bindings: readonly EventBinding[];
  readonly placements: readonly PlacementBinding[];
  /** Offline event records waiting for the app (one per event and object). */
  readonly offlineEvents: readonly OfflineRecord[];
  /** The plan's `rest_offline_extended` feature (confirm mode of offline events). @default true */
  setOfflineExtended(on: boolean): void;
  /**
   * The plan's `rest_auth_connector` feature (source keys; Pro and above, DOCS
   * api-reference/events/offline-events.md): off, a request with `auth_connector` is refused.
   * @default true
   */
  setSourceKeys(on: boolean): void;
  /**
   * An administrator of the portal names a user admin or takes it back: from the next call,
   * `profile` ADMIN and `user.admin` (DOCS:api-reference/common/users/user-admin.md, "whether
   * the current user is a Bitrix24 administrator") answer for the user's tokens accordingly,
   * tokens issued before included (the portal asks its own user table on each call).
   */
  setUserAdmin(userId: number, admin: boolean): void;
  readonly rateLimitHits: number;
  /** Where the portal pages frame the app from. */
  setApp(app: AppSettings): void;
  issueUserAuth(userId?: number): UserAuth;
  /**
   * A user's tokens of ANOTHER app installed on this portal: they pass `profile` like ours,
   * but `app.info` names that app, and our client credentials cannot refresh them.
   */
  issueForeignAppAuth(userId?: number, clientId?: string): UserAuth;
  /**
   * The installer POST (DOCS:settings/oauth/simple-way.md) into `${appUrl}${installPath}`.
   */
  install(opts?: InstallOptions): Promise<HttpResponseSummary>;
  /** What BX24.installFinish() does: installed, then ONAPPINSTALL to its handlers. */
  finishInstall(): Promise<DeliveryRecord[]>;
  update(newVersion: number): Promise<DeliveryRecord[]>;
  /**
   * The admin installs a new version from the marketplace over the installed one: the
   * installer is shown again and ONAPPUPDATE goes out once it is finished (an app without an
   * install page: at once). The deliveries made now, if any.
   */
  marketplaceUpdate(newVersion: number): Promise<DeliveryRecord[]>;
  uninstall(opts: { clean: boolean }): Promise<DeliveryRecord[]>;
  addDeal(fields: Record<string, unknown>, opts?: TriggerOptions): Promise<EntityChange>;
  updateDeal(
    id: string | number,
    fields: Record<string, unknown>,
    opts?: TriggerOptions,
  ): Promise<EntityChange>;
  deleteDeal(id: string | number, opts?: TriggerOptions): Promise<EntityChange>;
  addLead(fields: Record<string, unknown>, opts?: TriggerOptions): Promise<EntityChange>;
  updateLead(
    id: string | number,
    fields: Record<string, unknown>,
    opts?: TriggerOptions,
  ): Promise<EntityChange>;
  /** A CRM activity (a call, meeting or e-mail), unchecked: crm.activity.add checks. */
  addActivity(fields: Record<string, unknown>, opts?: TriggerOptions): Promise<EntityChange>;
  updateActivity(
    id: string | number,
    fields: Record<string, unknown>,
    opts?: TriggerOptions,
  ): Promise<EntityChange>;
  deleteActivity(id: string | number, opts?: TriggerOptions): Promise<EntityChange>;
  /**
   * Binds the activity to one more record (a type id: 2 a deal), as crm.activity.binding.add
   * or telephony does, with the ONCRMACTIVITYUPDATE that follows.
   */
  bindActivity(
    id: string | number,
    entityTypeId: number,
    entityId: string | number,
    opts?: TriggerOptions,
  ): Promise<EntityChange>;
  /** A quote (estimate), as crm.quote.add would make it. */
  addQuote(fields: Record<string, unknown>, opts?: TriggerOptions): Promise<EntityChange>;
  updateQuote(
    id: string | number,
    fields: Record<string, unknown>,
    opts?: TriggerOptions,
  ): Promise<EntityChange>;
  deleteQuote(id: string | number, opts?: TriggerOptions): Promise<EntityChange>;
  /**
   * An old invoice, unchecked (crm.invoice.add checks); PRICE is the product rows' sum. An add
   * or update also sends ONCRMINVOICESETSTATUS, before ADD / UPDATE (rest-quote-invoice.ts
   * `invoiceEvents`); the deliveries of both are returned.
   */
  addInvoice(fields: Record<string, unknown>, opts?: TriggerOptions): Promise<EntityChange>;
  updateInvoice(
    id: string | number,
    fields: Record<string, unknown>,
    opts?: TriggerOptions,
  ): Promise<EntityChange>;
  deleteInvoice(id: string | number, opts?: TriggerOptions): Promise<EntityChange>;
  addContact(fields: Record<string, unknown>, opts?: TriggerOptions): Promise<EntityChange>;
  addCompany(fields: Record<string, unknown>, opts?: TriggerOptions): Promise<EntityChange>;
  /** Fires ONCRMDYNAMICITEMADD and ONCRMDYNAMICITEMADD_<entityTypeId>. */
  addItem(
    entityTypeId: number,
    fields: Record<string, unknown>,
    opts?: TriggerOptions,
  ): Promise<ItemChange>;
  /** Fires ONCRMDYNAMICITEMUPDATE(_<entityTypeId>) only when a value changed. */
  updateItem(
    entityTypeId: number,
    id: string | number,
    fields: Record<string, unknown>,
    opts?: TriggerOptions,
  ): Promise<ItemChange>;
  /** Fields as `tasks.task.add` takes them (`TITLE`, `STATUS`, …); fires ONTASKADD. */
  addTask(fields: Record<string, unknown>, opts?: TriggerOptions): Promise<TaskChange>;
  updateTask(
    id: string | number,
    fields: Record<string, unknown>,
    opts?: TriggerOptions,
  ): Promise<TaskChange>;
  /**
   * A person writes in a task's chat: ONTASKCOMMENTADD with the core's data (`ID` 0, the
   * message's MESSAGE_ID, TASK_ID: rest-tasks.ts `taskCommentAddData`). The message ids count
   * from 1001.
   */
  addTaskComment(
    taskId: string | number,
    opts?: TriggerOptions,
  ): Promise<{ messageId: string; deliveries: DeliveryRecord[] }>;
  emit(event: string, data: PhpValue, opts?: TriggerOptions): Promise<DeliveryRecord[]>;
  setRateLimit(opts: RateLimitOptions): void;
  expireAccessTokens(): void;
  /**
   * The admin changes the portal's address (DOCS:settings/how-to-call-rest-api/change-domen.md):
   * it now answers at a new host, the old one answers every request with `302` and a
   * `Location` on the new host, and the new address comes only with authorization data (the
   * OAuth server's `client_endpoint` when tokens are refreshed, an event's `auth`); the
   * `member_id` stays. Resolves with the new domain.
   */
  rename(): Promise<string>;
  revokeRefreshTokens(): void;
  /**
   * The portal forgets what the OAuth server told it about the app's tokens (its hour-long
   * cache expired or evicted, or the next request lands on another web node): the next call
   * with each token asks the server again (test/emulator/rest-server.ts `authenticate`).
   */
  forgetTokenChecks(): void;
  /**
   * The OAuth server answers this portal's refresh grants with `invalid_client` or
   * `PAYMENT_REQUIRED` (the refresh token stays unspent) until set back to null.
   */
  failRefresh(error: 'invalid_client' | 'PAYMENT_REQUIRED' | null): void;
  /** The portal's subscription ends (true) or is renewed: see PortalState.subscriptionEnded. */
  endSubscription(ended: boolean): void;
  /**
   * Seconds of operating time each call of `method` costs (DOCS:limits.md); past
   * `limitSec` (480) within 10 minutes the method answers 429 OPERATION_TIME_LIMIT.
   */
  setOperatingCost(method: string, seconds: number, limitSec?: number): void;
  failNext(method: string, failure: FailureSpec, times?: number): void;
  /**
   * The next call of `method` answers only after `ms` (a fault of the test's making, not a
   * Bitrix24 behaviour: a portal that is slow or hangs).
   */
  delayNext(method: string, ms: number): void;
  /**
   * Every REST request to the portal waits `ms` before it is handled: the round trip to a
   * cloud portal (a test's setting, not a Bitrix24 behaviour). 0 turns it off.
   */
  setLatency(ms: number): void;
  /** `http://127.0.0.1:PORT/rest/<userId>/<secret>/` */
  createInboundWebhook(userId: number): string;
  createOutgoingWebhook(opts: { handler: string; events: string[] }): OutgoingWebhook;
  setDeliveryTimeout(ms: number): void;
  /** Resolves once deliveries started by REST calls have all been attempted. */
  whenIdle(): Promise<void>;
}

export function createPortalApi(state: PortalState): EmulatedPortal {
  let commentMessages = 0;
  const change = async (
    store: EntityStore,
    entity: string,
    action: 'ADD' | 'UPDATE' | 'DELETE',
    id: string | null,
    fields: Record<string, unknown>,
    opts: TriggerOptions | undefined,
    events: string[] = [`ONCRM${entity}${action}`],
    /** Called with the new or changed record before its event is sent. */
    stored?: (item: CrmItem) => void,
  ): Promise<EntityChange> => {
    const userId = triggerUser(opts);
    // Robots change records on behalf of the responsible user; user 1 stands in for that.
    const actor = userId ?? 1;
    let item: CrmItem | null = null;
    let saved = true;
    if (action === 'ADD') item = store.add(fields, actor);
    else if (action === 'UPDATE') {
      const done = store.update(String(id), fields, actor);
      item = done?.item ?? null;
      saved = done?.saved ?? true;
    }
    if (item) stored?.(item);
    const found = action === 'DELETE' ? store.remove(String(id)) : item !== null;
    if (!found) throw new Error(`${entity} ${String(id)} not found`);
    const entityId = item?.ID ?? String(id);
    const deliveries: DeliveryRecord[] = [];
    // An update that changed nothing of a deal, lead, contact, company or quote is not saved
    // and sends nothing (crm-store.ts `savedOnlyWhenChanged`).
    for (const event of saved ? events : []) {
      deliveries.push(...(await fireEvent(state, event, { FIELDS: { ID: entityId } }, userId)));
    }
    return { id: entityId, item, deliveries };
  };

  const fireAll = async (
    events: string[],
    data: PhpValue,
    userId: number | null,
  ): Promise<DeliveryRecord[]> =>
    (await Promise.all(events.map((e) => fireEvent(state, e, data, userId)))).flat();

  return {
    get memberId() {
      return state.memberId;
    },
    get domain() {
      return state.domain;
    },
    get address() {
      return state.address;
    },
    get url() {
      return state.url;
    },
    get clientEndpoint() {
      return state.clientEndpoint;
    },
    get applicationToken() {
      return state.applicationToken;
    },
    get users() {
      return state.users;
    },
    get installState() {
      return state.installState;
    },
    get appVersion() {
      return state.appVersion;
    },
    get deals() {
      return state.deals.items;
    },
    get contacts() {
      return state.contacts.items;
    },
    get leads() {
      return state.leads.items;
    },
    get activities() {
      return state.activities.items;
    },
    get companies() {
      return state.companies.items;
    },
    get quotes() {
      return state.quotes.items;
    },
    get invoices() {
      return state.invoices.items;
    },
    itemsOf(entityTypeId) {
      return state.items.types.get(entityTypeId) ?? new Map();
    },
    get tasks() {
      return state.tasks.tasks;
    },
    get timeline() {
      return state.timeline;
    },
    get deliveries() {
      return state.deliveries;
    },
    get calls() {
      return state.calls;
    },
    get bindings() {
      return state.bindings;
    },
    get placements() {
      return state.placements;
    },
    get offlineEvents() {
      return state.offline.records;
    },
    setUserAdmin(userId, admin) {
      const user = state.users.find((u) => u.id === userId);
      if (!user) throw new Error(`no user ${userId} on the emulated portal`);
      user.admin = admin;
    },
    setOfflineExtended(on) {
      state.offline.extended = on;
    },
    setSourceKeys(on) {
      state.offline.sourceKeys = on;
    },
    get rateLimitHits() {
      return state.bucket.hits;
    },
    setApp(app) {
      state.app = { appPath: '/app', installPath: '/install', ...app };
    },
    issueUserAuth: (userId = 1) => lifecycle.issueUserAuth(state, userId),
    issueForeignAppAuth: (userId = 1, clientId = 'local.another0app00.12345678') =>
      lifecycle.issueUserAuth(state, userId, clientId),
    install: (opts = {}) => lifecycle.install(state, opts),
    finishInstall: () => lifecycle.finishInstall(state),
    update: (newVersion) => lifecycle.update(state, newVersion),
    marketplaceUpdate: (newVersion) => lifecycle.marketplaceUpdate(state, newVersion),
    uninstall: (opts) => lifecycle.uninstall(state, opts.clean),
    addDeal: (fields, opts) => change(state.deals, 'DEAL', 'ADD', null, fields, opts),
    updateDeal: (id, fields, opts) =>
      change(state.deals, 'DEAL', 'UPDATE', String(id), fields, opts),
    deleteDeal: (id, opts) => change(state.deals, 'DEAL', 'DELETE', String(id), {}, opts),
    addLead: (fields, opts) => change(state.leads, 'LEAD', 'ADD', null, fields, opts),
    updateLead: (id, fields, opts) =>
      change(state.leads, 'LEAD', 'UPDATE', String(id), fields, opts),
    addActivity: (fields, opts) =>
      change(state.activities, 'ACTIVITY', 'ADD', null, fields, opts, undefined, (item) =>
        activityMade(state, item, fields),
      ),
    // New communications bind it anew, as crm.activity.update does (rest-methods.ts).
    updateActivity: (id, fields, opts) =>
      change(state.activities, 'ACTIVITY', 'UPDATE', String(id), fields, opts, undefined, (item) =>
        Array.isArray(fields['COMMUNICATIONS']) ? activityRebound(state, item, fields) : undefined,
      ),
    deleteActivity: (id, opts) =>
      change(state.activities, 'ACTIVITY', 'DELETE', String(id), {}, opts),
    async bindActivity(id, entityTypeId, entityId, opts) {
      const item = state.activities.get(String(id));
      if (!item) throw new Error(`ACTIVITY ${String(id)} not found`);
      bindActivity(state, item, { entityTypeId, entityId: Number(entityId) });
      const deliveries = await fireEvent(
        state,
        'ONCRMACTIVITYUPDATE',
        { FIELDS: { ID: item.ID } },
        triggerUser(opts),
      );
      return { id: item.ID, item, deliveries };
    },
    addQuote: (fields, opts) => change(state.quotes, 'QUOTE', 'ADD', null, fields, opts),
    updateQuote: (id, fields, opts) =>
      change(state.quotes, 'QUOTE', 'UPDATE', String(id), fields, opts),
    deleteQuote: (id, opts) => change(state.quotes, 'QUOTE', 'DELETE', String(id), {}, opts),
    addInvoice: (fields, opts) =>
      change(state.invoices, 'INVOICE', 'ADD', null, fields, opts, invoiceEvents('ADD')),
    updateInvoice: (id, fields, opts) =>
      change(
        state.invoices,
        'INVOICE',
        'UPDATE',
        String(id),
        fields,
        opts,
        invoiceEvents('UPDATE'),
      ),
    deleteInvoice: (id, opts) =>
      change(state.invoices, 'INVOICE', 'DELETE', String(id), {}, opts, invoiceEvents('DELETE')),
    addContact: (fields, opts) => change(state.contacts, 'CONTACT', 'ADD', null, fields, opts),
    addCompany: (fields, opts) => change(state.companies, 'COMPANY', 'ADD', null, fields, opts),
    async addItem(entityTypeId, fields, opts) {
      const userId = triggerUser(opts);
      const item = state.items.add(entityTypeId, fields, userId ?? 1);
      const deliveries = await fireAll(
        itemEventNames('ADD', entityTypeId),
        itemEventData(item),
        userId,
      );
      return { id: String(item.id), item, deliveries };
    },
    async updateItem(entityTypeId, id, fields, opts) {
      const userId = triggerUser(opts);
      const done = state.items.update(entityTypeId, String(id), fields, userId ?? 1);
      if (!done) throw new Error(`item ${entityTypeId}/${String(id)} not found`);
      const deliveries = done.changed
        ? await fireAll(itemEventNames('UPDATE', entityTypeId), itemEventData(done.item), userId)
        : [];
      return { id: String(done.item.id), item: done.item, deliveries };
    },
    async addTask(fields, opts) {
      const userId = triggerUser(opts);
      const task = state.tasks.add(fields, userId ?? 1);
      const deliveries = await fireEvent(state, 'ONTASKADD', taskEventData('ADD', task.id), userId);
      return { id: task.id, task, deliveries };
    },
    async updateTask(id, fields, opts) {
      const userId = triggerUser(opts);
      const done = state.tasks.update(String(id), fields, userId ?? 1);
      if (!done) throw new Error(`task ${String(id)} not found`);
      const deliveries = await fireEvent(
        state,
        'ONTASKUPDATE',
        taskEventData('UPDATE', done.task.id),
        userId,
      );
      return { id: done.task.id, task: done.task, deliveries };
    },
    async addTaskComment(taskId, opts) {
      if (!state.tasks.get(String(taskId))) throw new Error(`task ${String(taskId)} not found`);
      const messageId = String(1001 + commentMessages++);
      const deliveries = await fireEvent(
        state,
        'ONTASKCOMMENTADD',
        taskCommentAddData(String(taskId), messageId),
        triggerUser(opts),
      );
      return { messageId, deliveries };
    },
    emit: (event, data, opts) => fireEvent(state, event, data, triggerUser(opts)),
    setRateLimit: (opts) => state.bucket.configure(opts),
    expireAccessTokens: () => state.ctx.tokens.expireAccess(state.memberId),
    rename: () => state.rename(),
    revokeRefreshTokens: () => state.ctx.tokens.revokeRefresh(state.memberId),
    forgetTokenChecks: () => state.ctx.tokens.forgetChecks(state.memberId),
    failRefresh(error) {
      state.refreshFailure = error;
    },
    endSubscription(ended) {
      state.subscriptionEnded = ended;
    },
    setOperatingCost(method, seconds, limitSec) {
      state.operating.costs.set(method.toLowerCase(), seconds);
      if (limitSec !== undefined) state.operating.limitSec = limitSec;
    },
    delayNext(method, ms) {
      state.delays.set(method.toLowerCase(), ms);
    },
    setLatency(ms) {
      state.latencyMs = Math.max(0, ms);
    },
    failNext(method, failure, times = 1) {
      const key = method.toLowerCase();
      const queue = state.failures.get(key) ?? [];
      for (let i = 0; i < times; i += 1) queue.push(failure);
      state.failures.set(key, queue);
    },
    createInboundWebhook(userId) {
      const secret = randomHex(8);
      state.inboundWebhooks.set(secret, userId);
      return `${state.url}/rest/${userId}/${secret}/`;
    },
    createOutgoingWebhook(opts) {
      const hook: OutgoingWebhook = {
        id: state.nextId(),
        handler: opts.handler,
        events: opts.events.map((e) => e.toUpperCase()),
        applicationToken: randomHex(16),
      };
      state.outgoingWebhooks.push(hook);
      return hook;
    },
    setDeliveryTimeout(ms) {
      state.deliveryTimeoutMs = ms;
    },
    whenIdle: () => whenIdle(state),
  };
}
