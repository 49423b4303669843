import { createHash } from 'node:crypto';
import { PermanentError, RetryableError } from '../lib/retry-errors.js';
import type { EmailAction } from '../rules/model.js';
import { createMailer } from './mailer.js';
import type { ActionContext, ActionResult } from './types.js';

/** Connection-level failures worth retrying (nodemailer error codes). */
const TRANSIENT = new Set([
  'ECONNECTION',
  'ETIMEDOUT',
  'ESOCKET',
  'EDNS',
  'ECONNREFUSED',
  'ECONNRESET',
]);

/**
 * Maps a nodemailer failure: SMTP 4xx and connection trouble are retried; 5xx replies, bad
 * credentials and bad envelopes fail for good.
 */
function classify(e: unknown): Error {
  const err = e as Error & { code?: string; responseCode?: number };
  const msg = `email not sent: ${err.message}`;
  if (typeof err.responseCode === 'number') {
    return err.responseCode >= 500
      ? new PermanentError(msg, { cause: e })
      : new RetryableError(msg, { cause: e });
  }
  if (err.code === 'EAUTH' || err.code === 'EENVELOPE' || err.code === 'EMESSAGE') {
    return new PermanentError(msg, { cause: e });
  }
  if (err.code && TRANSIENT.has(err.code)) return new RetryableError(msg, { cause: e });
  return new RetryableError(msg, { cause: e });
}

/**
 * An `email` step over `SMTP_URL` (nodemailer). The Message-ID is derived from the
 * idempotency key, so a receiving system can recognise a repeated step.
 */
export async function runEmail(action: EmailAction, ctx: ActionContext): Promise<ActionResult> {
  const smtpUrl = ctx.config.email.smtpUrl;
  if (!smtpUrl) throw new PermanentError('email step: SMTP_URL is not set');
  const mailer = ctx.mailer ?? createMailer();
  const messageId = `<${createHash('sha256').update(ctx.idempotencyKey).digest('hex').slice(0, 32)}@b24hooks>`;
  const to = Array.isArray(action.to) ? action.to.map(String) : String(action.to);
  const started = performance.now();
  try {
    const info = await mailer.transport(smtpUrl).sendMail({
      from: action.from ?? ctx.config.email.from,
      to,
      subject: action.subject,
      text: action.text,
      html: action.html,
      messageId,
    });
    return {
      status: 'succeeded',
      request: { type: 'email', to, subject: action.subject },
      response: {
        ms: Math.round(performance.now() - started),
        body: {
          messageId: info.messageId,
          accepted: (info.accepted ?? []).map(String),
          rejected: (info.rejected ?? []).map(String),
          response: info.response,
        },
      },
    };
  } catch (e) {
    throw classify(e);
  } finally {
    if (!ctx.mailer) mailer.close();
  }
}
