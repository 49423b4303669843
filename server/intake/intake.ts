import { hash } from 'node:crypto';
import type http from 'node:http';
import type { Deps } from '../deps.js';
import { safeEqual } from '../lib/crypto.js';
import { AppError } from '../lib/errors.js';
import type { FastRoute } from '../http-server.js';
import type { IntakeRow } from '../../db/stores/intake.js';
import { portalEvents, type PortalRow } from '../../db/stores/portals.js';
import { createCommitQueue, type CommitQueue } from './commit-queue.js';
import { entityOf } from './entity.js';
import { parseEventBody, type Delivery } from './event-body.js';
import { clientAddress, createIpAllowlist, type IpAllowlist } from './ip-allowlist.js';
import { deliveredTokens, maskedBody } from './mask.js';
import { markStorageFailing, markStorageWritable } from '../metrics.js';
import { inlineWriter, type BatchWriter } from './writer.js';
import { createRejectBudget } from './reject-budget.js';
import {
  createUnverifiedCap,
  proofJobKey,
  UNVERIFIED_RETRY_AFTER_SECONDS,
} from './unverified-cap.js';

/** Events that manage the app itself; they get a `lifecycle` job. */
export const LIFECYCLE_EVENTS = new Set(['ONAPPINSTALL', 'ONAPPUPDATE', 'ONAPPUNINSTALL']);
/**
 * Events that can prove their own tokens by REST calls to the stored portal, while the
 * portal's application token is not known yet. Once it is known, a lifecycle event with
 * another token is refused like any other (CONTRACT §3): a reinstall with a new token
 * comes through the install handler, which the OAuth server confirms.
 */
const PROVABLE_EVENTS = new Set(['ONAPPINSTALL']);

export type RejectReason =
  'unknown_portal' | 'uninstalled_portal' | 'token_mismatch' | 'missing_token' | 'ip_not_allowed';

export { REJECTED_LOG_BUDGET_PER_MINUTE } from './reject-budget.js';

export interface Intake {
  readonly route: FastRoute;
  readonly allowlist: IpAllowlist;
  /** Waits until every delivery accepted so far is committed. */
  drain(): Promise<void>;
  /** Drains, then stops the allowlist refresh and the writer. */
  close(): Promise<void>;
  /** Called after each committed batch with the ids of new jobs' events (to wake the worker). */
  onStored(listener: () => void): void;
  /** Deliveries received in the last full second (the worker yields to a flood). */
  recentRate(): number;
  /** Deliveries are waiting for their commit: other writers should hold back. */
  busy(): boolean;
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

function send(
  res: http.ServerResponse,
  status: number,
  body: string,
  close = false,
  extra: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  const headers: Record<string, string | number> = {
    ...JSON_HEADERS,
    'content-length': Buffer.byteLength(body),
    ...extra,
  };
  if (close) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(body);
}

/**
 * Seconds a sender should wait after a 503 (the database refused the write: locked beyond
 * the busy timeout, disk full). Bitrix24 itself does not re-send; other senders may.
 */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

const OK = '{"ok":true}';
const OK_DUPLICATE = '{"ok":true,"duplicate":true}';

/**
 * The key identical deliveries share (same portal, event, ts and data), at most 64
 * characters: `ts` in base 36, the entity id, then as much of sha256(member, event, ts,
 * data) as fits. A purely random key would land each new delivery on a random page of the
 * unique index, so every row of a group commit would write its own index page; keys led by
 * the event time and entity go to the index's newest pages, a few for a whole batch.
 */
export function dedupeKey(d: Delivery, dataJson: string, entityId: string | null): string {
  const digest = hash(
    'sha256',
    `${d.auth.member_id}\n${d.event}\n${d.ts ?? ''}\n${dataJson}`,
    'base64url',
  );
  const time = d.ts === undefined ? '' : Math.max(0, Math.floor(d.ts)).toString(36);
  const entity = (entityId ?? '').slice(0, 20);
  // 43 digest characters are 256 bits; with the longest prefix at least 34 (204 bits) stay.
  const prefix = `${time.padStart(8, '0')}.${entity}.`;
  return prefix + digest.slice(0, 64 - prefix.length);
}

/** Application tokens seen recently, with their digests. */
const DIGEST_CACHE_SIZE = 1024;

function isFormType(header: string | undefined): boolean {
  if (!header) return false;
  const semi = header.indexOf(';');
  return (
    (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase() ===
    'application/x-www-form-urlencoded'
  );
}

/**
 * The event intake (`handlers.events`). Checks, in the contract's order: 413 over
 * BODY_LIMIT, 415 for another content type, 400 for a malformed body, 401 for an unknown or
 * uninstalled portal or a wrong application_token. A delivery is answered 200 only after it
 * and its job are committed; an identical repeat is answered 200 and counted.
 */
export function createIntake(
  deps: Deps,
  opts: { writer?: BatchWriter; path?: string } = {},
): Intake {
  const path = opts.path ?? deps.manifest.handlers.events;
  const writer = opts.writer ?? inlineWriter(deps.db);
  const { config, metrics, logger, box } = deps;
  const now = () => deps.clock.now().getTime();
  const listeners: Array<() => void> = [];
  const queue: CommitQueue = createCommitQueue(writer, now, {
    onCommitted: () => {
      markStorageWritable(metrics);
      for (const l of listeners) l();
    },
    onFailed: () => markStorageFailing(metrics),
  });
  const allowlist = createIpAllowlist({
    entries: config.ipAllowlist,
    listUrls: config.ipListUrls,
    logger,
  });

  // A portal sends the same application token with every delivery: its HMAC is computed
  // once, not per request. The comparison with the stored digest stays constant-time, and
  // a flood of forged tokens only empties the cache (then each costs one HMAC, as before).
  const digests = new Map<string, string>();
  const digestOf = (token: string): string => {
    let digest = digests.get(token);
    if (digest === undefined) {
      digest = box.digest(token);
      if (digests.size >= DIGEST_CACHE_SIZE) digests.clear();
      digests.set(token, digest);
    }
    return digest;
  };

  const rejectBudget = createRejectBudget(now);
  const unverifiedCap = createUnverifiedCap(deps.db, now);

  function baseRow(
    d: Delivery,
    portal: PortalRow | undefined,
    remote: string | undefined,
    dataJson = JSON.stringify(d.data),
  ): IntakeRow['event'] {
    const entity = entityOf(d.event, d.data);
    return {
      portal_id: portal?.id ?? null,
      member_id: d.auth.member_id,
      event: d.event,
      event_handler_id: d.eventHandlerId ?? null,
      entity_type: entity.type,
      entity_id: entity.id,
      ts: d.ts ?? null,
      body: maskedBody(d, dataJson),
      auth_enc: null,
      dedupe_key: null,
      status: 'received',
      reject_reason: null,
      source: 'online',
      received_at: now(),
      remote_addr: remote ?? null,
    };
  }

  async function reject(
    res: http.ServerResponse,
    reason: RejectReason,
    d: Delivery | undefined,
    portal: PortalRow | undefined,
    remote: string | undefined,
  ): Promise<void> {
    metrics.eventsRejected.inc({ reason });
    if (portal && d) {
      // Labels only from what we know (stored portal, its bound events), so forged posts
      // cannot grow the number of series.
      const event = portalEvents(portal).includes(d.event) ? d.event : 'other';
      metrics.eventsRejectedByPortal.inc({ portal: portal.member_id, event });
    }
    logger.warn(
      { reason, memberId: d?.auth.member_id, event: d?.event, remote },
      'event delivery rejected',
    );
    if (d && rejectBudget.take(reason, d.auth.member_id)) {
      const row = baseRow(d, portal, remote);
      row.status = 'rejected';
      row.reject_reason = reason;
      row.body = row.body && row.body.length > 4096 ? row.body.slice(0, 4096) : row.body;
      try {
        await queue.submit({ event: row, job: null });
      } catch (e) {
        logger.error({ err: e }, 'could not log a rejected delivery');
      }
    }
    send(res, 401, '{"error":"unauthorized"}');
  }

  async function accept(
    res: http.ServerResponse,
    d: Delivery,
    portal: PortalRow,
    remote: string | undefined,
    verified: boolean,
  ): Promise<void> {
    const dataJson = JSON.stringify(d.data);
    const row = baseRow(d, portal, remote, dataJson);
    row.dedupe_key = dedupeKey(d, dataJson, row.entity_id);
    const lifecycle = LIFECYCLE_EVENTS.has(d.event);
    let job: IntakeRow['job'] = null;
    if (verified) {
      job = {
        type: lifecycle ? 'lifecycle' : 'process_event',
        portal_id: portal.id,
        entity_key: row.entity_id ? `${portal.id}:${row.entity_type}:${row.entity_id}` : null,
        payload: null,
        max_attempts: config.worker.maxAttempts,
        run_at: row.received_at,
      };
    } else {
      row.status = 'unverified';
      row.auth_enc = box.encrypt(JSON.stringify(deliveredTokens(d)));
      const provable = PROVABLE_EVENTS.has(d.event);
      const bytes = (row.body?.length ?? 0) + row.auth_enc.length;
      const refused = await unverifiedCap.admit(portal.id, bytes, provable);
      if (refused) {
        metrics.eventsRejected.inc({ reason: `unverified_cap_${refused}` });
        logger.warn(
          { memberId: d.auth.member_id, event: d.event, bound: refused, remote },
          'unverified delivery refused: the portal holds as many as it may until its token is known',
        );
        send(res, 503, '{"error":"too many unverified deliveries"}', false, {
          'retry-after': String(UNVERIFIED_RETRY_AFTER_SECONDS),
        });
        return;
      }
      // An install event can prove its own tokens by REST calls to the stored portal. One
      // proof job per portal tries them all; further ones are not queued (migration 0010).
      if (provable) {
        job = {
          type: 'lifecycle',
          portal_id: portal.id,
          entity_key: proofJobKey(portal.id),
          payload: null,
          max_attempts: config.worker.maxAttempts,
          run_at: row.received_at,
          detached: true,
        };
      }
    }
    let outcome;
    try {
      outcome = await queue.submit({ event: row, job });
    } catch (e) {
      logger.error(
        { err: e, memberId: d.auth.member_id, event: d.event },
        'could not store an event delivery',
      );
      send(res, 503, '{"error":"storage unavailable"}', false, {
        'retry-after': String(STORAGE_RETRY_AFTER_SECONDS),
      });
      return;
    }
    if (outcome.duplicate) {
      metrics.eventsDuplicate.inc({ portal: portal.member_id });
      send(res, 200, OK_DUPLICATE);
      return;
    }
    if (verified) metrics.eventsReceived.inc({ portal: portal.member_id, event: d.event });
    else metrics.eventsUnverified.inc({ portal: portal.member_id });
    send(res, 200, OK);
  }

  async function handleBody(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    raw: string,
    remote: string | undefined,
  ) {
    let d: Delivery;
    try {
      d = parseEventBody(raw);
    } catch (e) {
      const reason = e instanceof AppError ? e.message : 'malformed body';
      metrics.eventsRejected.inc({ reason: 'malformed' });
      send(res, 400, JSON.stringify({ error: reason.slice(0, 200) }));
      return;
    }
    const portal = await deps.portals.get(d.auth.member_id);
    if (!portal) return reject(res, 'unknown_portal', d, undefined, remote);
    if (portal.status === 'uninstalled')
      return reject(res, 'uninstalled_portal', d, portal, remote);
    const given = d.auth.application_token ?? '';
    if (!portal.application_token_digest) {
      // The install race: the token is not known yet. Keep it and verify it once it is.
      return accept(res, d, portal, remote, false);
    }
    if (!given) return reject(res, 'missing_token', d, portal, remote);
    if (safeEqual(digestOf(given), portal.application_token_digest)) {
      return accept(res, d, portal, remote, true);
    }
    return reject(res, 'token_mismatch', d, portal, remote);
  }

  let rateSecond = 0;
  let rateCount = 0;
  let lastRate = 0;
  const countRequest = () => {
    const sec = Math.floor(Date.now() / 1000);
    if (sec !== rateSecond) {
      lastRate = sec === rateSecond + 1 ? rateCount : 0;
      rateSecond = sec;
      rateCount = 0;
    }
    rateCount++;
  };

  const route: FastRoute = {
    method: 'POST',
    path,
    handle(req, res) {
      countRequest();
      const remote = clientAddress(req, config.trustProxy);
      if (allowlist.enabled && !allowlist.allows(remote)) {
        metrics.eventsRejected.inc({ reason: 'ip_not_allowed' });
        logger.warn({ remote }, 'event delivery from an address outside B24_IP_ALLOWLIST');
        send(res, 403, '{"error":"forbidden"}', true);
        req.resume();
        return;
      }
      const limit = config.bodyLimit;
      const declared = Number(req.headers['content-length'] ?? NaN);
      if (declared > limit) {
        metrics.eventsRejected.inc({ reason: 'too_large' });
        send(res, 413, '{"error":"body too large"}', true);
        req.resume();
        return;
      }
      if (!isFormType(req.headers['content-type'])) {
        metrics.eventsRejected.inc({ reason: 'content_type' });
        send(res, 415, '{"error":"expected application/x-www-form-urlencoded"}');
        req.resume();
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      req.on('data', (chunk: Buffer) => {
        if (tooLarge) return;
        size += chunk.length;
        if (size > limit) {
          tooLarge = true;
          chunks.length = 0;
          metrics.eventsRejected.inc({ reason: 'too_large' });
          send(res, 413, '{"error":"body too large"}', true);
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        if (tooLarge) return;
        const raw =
          chunks.length === 1
            ? chunks[0]!.toString('utf8')
            : Buffer.concat(chunks).toString('utf8');
        handleBody(req, res, raw, remote).catch((e: unknown) => {
          logger.error({ err: e }, 'event intake failed');
          send(res, 500, '{"error":"internal error"}');
        });
      });
      req.on('error', () => {
        /* the client went away; nothing was acknowledged */
      });
    },
  };

  return {
    route,
    allowlist,
    drain: () => queue.drain(),
    async close() {
      await queue.drain();
      allowlist.stop();
      await writer.close();
    },
    onStored(listener) {
      listeners.push(listener);
    },
    busy: () => queue.busy(),
    recentRate() {
      const sec = Math.floor(Date.now() / 1000);
      if (sec === rateSecond) return Math.max(lastRate, rateCount);
      return sec === rateSecond + 1 ? rateCount : 0;
    },
  };
}
