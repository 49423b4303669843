import { randomBytes } from 'node:crypto';
import type { Deps } from '../../server/deps.js';
import { upsertPortal, type PortalRow } from '../../db/stores/portals.js';
import type { IntakeRow } from '../../db/stores/intake.js';
import { insertJobs } from '../../db/stores/jobs.js';
import { buildEventAuth, buildEventBody } from '../emulator/event-body.js';
import type { PhpValue } from '../emulator/php-form.js';

export interface TestPortal {
  memberId: string;
  domain: string;
  applicationToken: string;
  row: PortalRow;
}

/** Stores an installed portal directly (for intake tests that do not need the install flow). */
export async function seedPortal(
  deps: Deps,
  opts: {
    memberId?: string;
    domain?: string;
    applicationToken?: string | null;
    status?: PortalRow['status'];
  } = {},
): Promise<TestPortal> {
  const memberId = opts.memberId ?? randomBytes(16).toString('hex');
  const domain = opts.domain ?? `${memberId.slice(0, 8)}.bitrix24.com`;
  const applicationToken =
    opts.applicationToken === undefined ? randomBytes(16).toString('hex') : opts.applicationToken;
  const row = await upsertPortal(deps.db, {
    member_id: memberId,
    domain,
    client_endpoint: `https://${domain}/rest/`,
    server_endpoint: 'https://oauth.bitrix.info/rest/',
    status: opts.status ?? 'installed',
    application_token_digest: applicationToken ? deps.box.digest(applicationToken) : null,
    updated_at: deps.clock.now().getTime(),
  });
  deps.portals.invalidate(memberId);
  return { memberId, domain, applicationToken: applicationToken ?? '', row };
}

/**
 * A delivery exactly as Bitrix24 encodes it (test/fixtures/events/README.md), built by the
 * emulator's encoder.
 */
export function eventBody(opts: {
  portal: { memberId: string; domain: string; applicationToken: string };
  event?: string;
  id?: string | number;
  data?: PhpValue;
  ts?: number;
  applicationToken?: string;
  accessToken?: string | null;
}): string {
  const accessToken =
    opts.accessToken === undefined ? `at-${randomBytes(12).toString('hex')}` : opts.accessToken;
  const ts = opts.ts ?? 1764237600;
  return buildEventBody({
    event: opts.event ?? 'ONCRMDEALUPDATE',
    eventHandlerId: 58,
    data: opts.data ?? { FIELDS: { ID: String(opts.id ?? 1) } },
    ts,
    auth: buildEventAuth({
      domain: opts.portal.domain,
      clientEndpoint: `https://${opts.portal.domain}/rest/`,
      serverEndpoint: 'https://oauth.bitrix.info/rest/',
      memberId: opts.portal.memberId,
      applicationToken: opts.applicationToken ?? opts.portal.applicationToken,
      scope: 'crm,placement,user_brief',
      status: 'L',
      tokens: accessToken ? { accessToken, expires: ts + 3600, expiresIn: 3600, userId: 1 } : null,
    }),
  });
}

/**
 * A deal update as the intake hands it to the writer: `key` is the dedupe key (default
 * `key-<deal>`); null makes it a rejected delivery, with no key and no job.
 */
export function intakeRow(
  portal: TestPortal,
  dealId: number,
  opts: { key?: string | null; body?: string; receivedAt?: number } = {},
): IntakeRow {
  const rejected = opts.key === null;
  const at = opts.receivedAt ?? 1_000;
  return {
    event: {
      portal_id: portal.row.id,
      member_id: portal.memberId,
      event: 'ONCRMDEALUPDATE',
      event_handler_id: '58',
      entity_type: 'deal',
      entity_id: String(dealId),
      ts: 1764237600,
      body: opts.body ?? `{"deal":${dealId}}`,
      auth_enc: null,
      dedupe_key: opts.key === undefined ? `key-${dealId}` : opts.key,
      status: rejected ? 'rejected' : 'received',
      reject_reason: rejected ? 'token_mismatch' : null,
      source: 'online',
      received_at: at,
      remote_addr: '127.0.0.1',
    },
    job: rejected
      ? null
      : {
          type: 'process_event',
          portal_id: portal.row.id,
          entity_key: `${portal.row.id}:deal:${dealId}`,
          payload: null,
          max_attempts: 5,
          run_at: at,
          topic: 'ONCRMDEALUPDATE',
        },
  };
}

let jobEntity = 0;

/**
 * `n` pending `process_event` jobs of a portal without events, due at `runAt` (default now),
 * each for an entity of its own unless `entity` is given: claim tests' queue contents.
 */
export async function seedJobs(
  deps: Deps,
  portalId: number,
  n: number,
  opts: { topic?: string; runAt?: number; entity?: string } = {},
): Promise<void> {
  const now = deps.clock.now().getTime();
  await insertJobs(
    deps.db,
    Array.from({ length: n }, () => ({
      type: 'process_event' as const,
      event_id: null,
      portal_id: portalId,
      entity_key: `${portalId}:deal:${opts.entity ?? `j${++jobEntity}`}`,
      payload: null,
      max_attempts: 5,
      run_at: opts.runAt ?? now,
      topic: opts.topic ?? 'ONCRMDEALUPDATE',
    })),
    now,
  );
}
