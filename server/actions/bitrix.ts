import { AppError } from '../lib/errors.js';
import { PermanentError, RetryableError } from '../lib/retry-errors.js';
import type { BitrixAction } from '../rules/model.js';
import type { ActionContext, ActionResult } from './types.js';

/**
 * A `bitrix` step: any REST method on the event's portal through the processor's REST client
 * (`ctx.bitrix`), e.g. `crm.timeline.comment.add` to write the outcome onto the deal. The
 * step's output is the method's `result`.
 */
export async function runBitrix(action: BitrixAction, ctx: ActionContext): Promise<ActionResult> {
  if (!ctx.bitrix)
    throw new PermanentError(`bitrix step ${action.method}: no REST client for this portal`);
  const params = action.params ?? {};
  const started = performance.now();
  let result: unknown;
  try {
    result = await ctx.bitrix(action.method, params);
  } catch (e) {
    // The REST client's own classes (RetryableError, PermanentError, PausedError, …) already
    // say what should happen; an error with a `retryable` flag is mapped; anything else is
    // left to the worker, which retries unknown errors.
    if (e instanceof AppError) throw e;
    const flag = (e as { retryable?: unknown }).retryable;
    const msg = `bitrix ${action.method} failed: ${(e as Error).message}`;
    if (flag === true) throw new RetryableError(msg, { cause: e });
    if (flag === false) throw new PermanentError(msg, { cause: e });
    throw e;
  }
  return {
    status: 'succeeded',
    request: { type: 'bitrix', method: action.method, params: Object.keys(params) },
    response: { ms: Math.round(performance.now() - started), body: result },
  };
}
