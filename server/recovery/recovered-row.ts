import { hash } from 'node:crypto';
import type { IntakeRow } from '../../db/stores/intake.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { entityOf } from '../intake/entity.js';

/**
 * An event found by loss recovery (an offline record, or a sweep's reconcile), as the intake
 * store writes it: a received event with its `process_event` job, so dedupe and the order
 * of an entity's events are the same as for a delivery.
 */
export function recoveredRow(args: {
  portal: PortalRow;
  event: string;
  data: Record<string, unknown>;
  source: 'offline' | 'sweep';
  /** Unix seconds of the change, when known. */
  ts: number | null;
  /** What the source adds to the stored body (`offline: {…}` or `sweep: {…}`). */
  origin: Record<string, unknown>;
  /** Identifies the change: the same change found again is a duplicate, not a new event. */
  changeKey: string;
  maxAttempts: number;
  now: number;
}): IntakeRow {
  const { portal, event, data, source, ts, now } = args;
  const entity = entityOf(event, data);
  return {
    event: {
      portal_id: portal.id,
      member_id: portal.member_id,
      event,
      event_handler_id: null,
      entity_type: entity.type,
      entity_id: entity.id,
      ts,
      body: JSON.stringify({ event, data, ts, [source]: args.origin }),
      auth_enc: null,
      dedupe_key: hash('sha256', `${portal.member_id}\n${source}\n${args.changeKey}`, 'hex'),
      status: 'received',
      reject_reason: null,
      source,
      received_at: now,
      remote_addr: null,
    },
    job: {
      type: 'process_event',
      portal_id: portal.id,
      entity_key: entity.id ? `${portal.id}:${entity.type}:${entity.id}` : null,
      payload: null,
      max_attempts: args.maxAttempts,
      run_at: now,
      topic: event,
    },
  };
}
