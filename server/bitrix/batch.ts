import qs from 'qs';
import { PermanentError } from '../lib/retry-errors.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { asRecord, callPortal, type CallPath } from './call.js';
import { bitrixApiError } from './errors.js';
import type { BatchAnswer, BatchCommand, BatchOptions } from './types.js';

export const BATCH_LIMIT = 50;

/** One read waiting for the end of the tick. */
interface PendingRead {
  method: string;
  params: object;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

/** Reads issued in this tick, per portal, until they leave as one batch. */
export interface ReadQueue {
  readonly cp: CallPath;
  readonly pending: Map<number, { portal: PortalRow; items: PendingRead[] }>;
}

/** BitrixRest.batch: up to 50 commands in one `batch` request. */
export async function batchCall(
  cp: CallPath,
  portal: PortalRow,
  cmds: Readonly<Record<string, BatchCommand>>,
  o: BatchOptions,
): Promise<BatchAnswer> {
  const keys = Object.keys(cmds);
  if (keys.length > BATCH_LIMIT) {
    throw new PermanentError(`a batch holds at most ${BATCH_LIMIT} commands, got ${keys.length}`);
  }
  if (keys.length === 0) return { result: {}, errors: {} };
  const cmd: Record<string, string> = {};
  for (const k of keys) {
    const [method, params] = cmds[k]!;
    const query = params ? qs.stringify(params) : '';
    cmd[k] = query ? `${method}?${query}` : method;
  }
  const answer = await callPortal<Record<string, unknown>>(cp, portal, 'batch', {
    halt: o.halt ? 1 : 0,
    cmd,
    ...(o.authConnector ? { auth_connector: o.authConnector } : {}),
  });
  const errors: BatchAnswer['errors'] = {};
  for (const [k, v] of Object.entries(asRecord(answer.result_error))) {
    const e = asRecord(v);
    errors[k] = {
      error: String(e.error ?? ''),
      error_description: String(e.error_description ?? ''),
    };
  }
  const total: Record<string, number> = {};
  for (const [k, v] of Object.entries(asRecord(answer.result_total))) {
    if (Number.isFinite(Number(v))) total[k] = Number(v);
  }
  return { result: asRecord(answer.result), errors, total };
}

/** BitrixRest.read: joins the portal's reads of this tick; they leave together at its end. */
export function queueRead<T>(
  rq: ReadQueue,
  portal: PortalRow,
  method: string,
  params: object,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let pending = rq.pending.get(portal.id);
    if (!pending) {
      pending = { portal, items: [] };
      rq.pending.set(portal.id, pending);
      setImmediate(() => flushReads(rq, portal.id));
    }
    pending.items.push({ method, params, resolve: resolve as (v: unknown) => void, reject });
  });
}

/** One read alone is a plain call; more leave as batches of at most 50. */
function flushReads(rq: ReadQueue, portalId: number): void {
  const pending = rq.pending.get(portalId);
  rq.pending.delete(portalId);
  if (!pending) return;
  const { portal, items } = pending;
  if (items.length === 1) {
    const only = items[0]!;
    callPortal(rq.cp, portal, only.method, only.params).then(only.resolve, only.reject);
    return;
  }
  for (let i = 0; i < items.length; i += BATCH_LIMIT) {
    const chunk = items.slice(i, i + BATCH_LIMIT);
    const cmds: Record<string, BatchCommand> = {};
    chunk.forEach((it, j) => (cmds[`r${j}`] = [it.method, it.params]));
    batchCall(rq.cp, portal, cmds, {}).then(
      (answer) => chunk.forEach((it, j) => settleRead(it, answer, `r${j}`)),
      (e: unknown) => chunk.forEach((it) => it.reject(e)),
    );
  }
}

/** A read's own result or error out of the batch answer. */
function settleRead(it: PendingRead, answer: BatchAnswer, key: string): void {
  const err = answer.errors[key];
  if (err) {
    it.reject(
      bitrixApiError({
        bitrixCode: err.error,
        httpStatus: 400,
        method: it.method,
        description: err.error_description,
      }),
    );
  } else if (key in answer.result) it.resolve(answer.result[key]);
  else {
    it.reject(
      bitrixApiError({
        bitrixCode: 'ERROR_UNEXPECTED_ANSWER',
        httpStatus: 200,
        method: it.method,
        description: 'no result in the batch answer',
      }),
    );
  }
}
