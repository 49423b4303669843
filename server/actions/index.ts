import type { Action, ActionType } from '../rules/model.js';
import { runBitrix } from './bitrix.js';
import { runEmail } from './email.js';
import { runHttp } from './http.js';
import { runSms } from './sms.js';
import { runTelegram } from './telegram.js';
import type { ActionContext, ActionResult } from './types.js';

export type {
  ActionContext,
  ActionResult,
  BitrixCall,
  RequestSummary,
  ResponseSummary,
} from './types.js';
export { createMailer, type Mailer } from './mailer.js';
export { createChannelCheck } from './channel-check.js';

type Executor<A extends Action> = (action: A, ctx: ActionContext) => Promise<ActionResult>;

/** One executor per action type; adding a type means one file and one line here. */
export const ACTION_EXECUTORS: { [T in ActionType]: Executor<Extract<Action, { type: T }>> } = {
  http: runHttp,
  telegram: runTelegram,
  email: runEmail,
  sms: runSms,
  bitrix: runBitrix,
};

/**
 * Runs one step. `action` is the step as written in the map, `rendered` the same step after
 * `renderTemplate` (server/rules/render-action.ts); executors send what `rendered` says.
 * Failures throw RetryableError or PermanentError (server/lib/retry-errors.ts).
 */
export async function runAction(
  action: Action,
  rendered: Action,
  ctx: ActionContext,
): Promise<ActionResult> {
  if (rendered.type !== action.type) {
    throw new TypeError(`rendered step type ${rendered.type} differs from ${action.type}`);
  }
  const run = ACTION_EXECUTORS[rendered.type] as Executor<Action>;
  return run(rendered, ctx);
}

/** What a finished step offers later steps as `{{steps.<name>.…}}`. */
export function stepOutput(result: ActionResult): { response: unknown; status?: number } {
  return result.response.status === undefined
    ? { response: result.response.body }
    : { response: result.response.body, status: result.response.status };
}
