import { createHash } from 'node:crypto';
import { createServer, type RequestListener } from 'node:http';
import { createEntityStore } from './crm-store.js';
import { ACTIVITY, COMPANY, CONTACT, DEAL, LEAD } from './crm-entities.js';
import { INVOICE, QUOTE } from './crm-quote-invoice.js';
import { createItemStore } from './item-store.js';
import { createTaskStore } from './task-store.js';
import { closeServer, listen, randomHex, sendJson } from './http-util.js';
import { createOfflineQueue } from './offline-queue.js';
import { createOperatingState } from './operating-limit.js';
import { createLeakyBucket } from './rate-limit.js';
import { handleRest } from './rest-server.js';
import { handlePage } from './portal-page.js';
import { whenIdle } from './event-delivery.js';
import { createPortalApi, type EmulatedPortal } from './portal-api.js';
import type { EmulatorContext, PortalState } from './state.js';
import type { EmulatedUser, PortalOptions } from './types.js';

export const DEFAULT_USERS: readonly EmulatedUser[] = [
  { id: 1, admin: true, name: 'Admin' },
  { id: 2, admin: false, name: 'Manager' },
];

/**
 * Per portal and app, like the core's fallback `md5(member_id|app|client_secret|…)`
 * (CORE:classes/general/rest_util.php `CRestUtil::getApplicationToken`): stable for a portal,
 * different between portals.
 */
function applicationTokenFor(ctx: EmulatorContext, memberId: string): string {
  return createHash('md5').update(`${memberId}|${ctx.clientId}|${ctx.clientSecret}`).digest('hex');
}

function requestListener(state: PortalState): RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', state.url);
    const done = (p: Promise<unknown>): void => {
      p.catch((err: unknown) => {
        if (!res.headersSent) {
          sendJson(res, 500, { error: 'INTERNAL_SERVER_ERROR', error_description: String(err) });
        } else res.destroy();
      });
    };
    if (req.method === 'OPTIONS') {
      // The frame calls REST cross-origin (BX24.callMethod, b24jssdk's B24Frame).
      res.writeHead(204, {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type, Authorization',
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return;
    }
    if (url.pathname.startsWith('/rest/')) {
      done(handleRest(state, req, res, url));
      return;
    }
    done(
      handlePage(state, req, res, url).then((handled) => {
        if (!handled) sendJson(res, 404, { error: 'NOT_FOUND', error_description: 'Not found' });
      }),
    );
  };
}

export interface StartedPortal {
  api: EmulatedPortal;
  close(): Promise<void>;
}

export async function startPortal(
  ctx: EmulatorContext,
  options: PortalOptions,
): Promise<StartedPortal> {
  const memberId = options.memberId ?? randomHex(16);
  if (ctx.portals.has(memberId)) throw new Error(`portal ${memberId} already exists`);
  let seq = 0;
  const nextId = (): number => ++seq;
  let multiSeq = 0;
  const nextMultiId = (): string => String(++multiSeq);
  const state: PortalState = {
    ctx,
    memberId,
    domain: '',
    address: '',
    url: '',
    clientEndpoint: '',
    applicationToken: applicationTokenFor(ctx, memberId),
    scope: options.scope ?? 'crm,placement,user_brief,task',
    status: options.plan ?? 'L',
    appVersion: options.appVersion ?? 1,
    installState: options.installed ? 'installed' : 'new',
    installerUserId: 1,
    app: null,
    users: (options.users ?? DEFAULT_USERS).map((u) => ({ ...u })),
    bindings: [],
    placements: [],
    offline: { ...createOfflineQueue(), sourceKeys: options.sourceKeys ?? true },
    calls: [],
    deliveries: [],
    deals: createEntityStore(DEAL, ctx.now, nextMultiId),
    leads: createEntityStore(LEAD, ctx.now, nextMultiId),
    activities: createEntityStore(ACTIVITY, ctx.now, nextMultiId),
    contacts: createEntityStore(CONTACT, ctx.now, nextMultiId),
    companies: createEntityStore(COMPANY, ctx.now, nextMultiId),
    quotes: createEntityStore(QUOTE, ctx.now, nextMultiId),
    invoices: createEntityStore(INVOICE, ctx.now, nextMultiId),
    items: createItemStore(ctx.now),
    tasks: createTaskStore(ctx.now),
    timeline: [],
    bucket: createLeakyBucket(ctx.now),
    operating: createOperatingState(),
    refreshFailure: null,
    subscriptionEnded: false,
    failures: new Map(),
    delays: new Map(),
    latencyMs: 0,
    inboundWebhooks: new Map(),
    outgoingWebhooks: [],
    nextId,
    deliveryTimeoutMs: options.deliveryTimeoutMs ?? 10_000,
    lang: options.lang ?? 'en',
    pending: new Set(),
    aborter: new AbortController(),
    rename: async () => {
      throw new Error('not started');
    },
  };
  // The old address of a renamed portal answers with a redirect (rename below).
  let handler = requestListener(state);
  const server = createServer((req, res) => handler(req, res));
  const servers = [server];
  const port = await listen(server, options.port ?? 0);
  state.address = `127.0.0.1:${port}`;
  state.domain = options.domain ?? state.address;
  state.url = `http://${state.domain}`;
  state.clientEndpoint = `${state.url}/rest/`;
  state.installerUserId = state.users.find((u) => u.admin)?.id ?? 1;
  // DOCS:settings/how-to-call-rest-api/change-domen.md: requests to the old address get a
  // 301 or 302 with a Location on the new one; the member_id does not change, and the new
  // address reaches the app only in authorization data (`client_endpoint` of a token
  // answer, an event's `auth`). Here the new host is a new port of 127.0.0.1, and only the
  // latest old address redirects (one rename per test is enough).
  state.rename = async () => {
    const moved = createServer(requestListener(state));
    servers.push(moved);
    const to = `http://127.0.0.1:${await listen(moved, 0)}`;
    handler = (req, res) => {
      res.writeHead(302, { Location: `${to}${req.url ?? '/'}`, 'Content-Length': '0' });
      res.end();
    };
    state.domain = to.slice('http://'.length);
    state.address = state.domain;
    state.url = to;
    state.clientEndpoint = `${to}/rest/`;
    return state.domain;
  };
  ctx.portals.set(memberId, state);
  return {
    api: createPortalApi(state),
    async close() {
      state.aborter.abort();
      await whenIdle(state);
      for (const s of servers) await closeServer(s);
    },
  };
}
