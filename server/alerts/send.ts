import type { Knex } from 'knex';
import type { Deps } from '../deps.js';
import type { Mailer } from '../actions/mailer.js';
import { runEmail } from '../actions/email.js';
import { telegramChatGuard } from '../processing/telegram-chats.js';
import { runTelegram } from '../actions/telegram.js';
import { PermanentError } from '../lib/retry-errors.js';
import type { JobHandler } from '../queue/types.js';
import { getPortalAlertChannels, type PortalAlertChannels } from '../../db/stores/alerts.js';
import { insertJobs, type NewJob } from '../../db/stores/jobs.js';
import type { AlertChannel, AlertMessage, AlertPayload } from './types.js';

/** Where a condition's messages go: the portal's own channels, else the global defaults. */
export interface AlertDestinations {
  telegram?: string;
  email?: string;
}

/**
 * A portal's alert destinations (settings `alerts.telegramChatId` / `alerts.email`, else
 * TELEGRAM_CHAT_ID / ALERT_EMAIL_TO); `memberId` null = app-wide conditions (defaults only).
 * A channel without its transport (TELEGRAM_BOT_TOKEN, SMTP_URL) is left out.
 */
export async function alertDestinations(
  deps: Pick<Deps, 'db' | 'config'>,
  memberId: string | null,
  /** The portal's own channels when the caller has read them already. */
  known?: PortalAlertChannels,
): Promise<AlertDestinations> {
  const own = memberId ? (known ?? (await getPortalAlertChannels(deps.db, memberId))) : undefined;
  return destinationsOf(deps.config, own, true);
}

/**
 * The channels of `own` (a portal's settings), with the global defaults where it has none
 * when `withDefaults`; a channel without its transport (TELEGRAM_BOT_TOKEN, SMTP_URL) is left
 * out.
 */
export function destinationsOf(
  config: Deps['config'],
  own: PortalAlertChannels | undefined,
  withDefaults: boolean,
): AlertDestinations {
  const { telegram, email } = config;
  const chat = own?.telegramChatId ?? (withDefaults ? telegram.chatId : undefined);
  const to = own?.email ?? (withDefaults ? email.to : undefined);
  return {
    ...(telegram.botToken && chat ? { telegram: chat } : {}),
    ...(email.smtpUrl && to ? { email: to } : {}),
  };
}

/** One `alert` job per channel, so a channel that is down retries on its own. */
export function alertJobs(
  message: AlertMessage,
  to: AlertDestinations,
  portalId: number | null,
  maxAttempts: number,
  now: number,
): { jobs: NewJob[]; channels: AlertChannel[] } {
  const jobs: NewJob[] = [];
  const channels: AlertChannel[] = [];
  const add = (channel: AlertChannel, extra: Partial<AlertPayload>) => {
    const payload: AlertPayload = { channel, ...message, ...extra };
    channels.push(channel);
    jobs.push({
      type: 'alert',
      event_id: null,
      portal_id: portalId,
      // The messages of one condition on one channel go out in order (alert before recovery).
      entity_key: `alert:${channel}:${message.key}`.slice(0, 128),
      payload: JSON.stringify(payload),
      max_attempts: maxAttempts,
      run_at: now,
    });
  };
  if (to.telegram) add('telegram', { chatId: to.telegram });
  if (to.email) add('email', { to: to.email });
  return { jobs, channels };
}

export async function enqueueAlertJobs(db: Knex, jobs: NewJob[], now: number): Promise<void> {
  if (jobs.length) await insertJobs(db, jobs, now);
}

function parsePayload(raw: string | null): AlertPayload {
  try {
    const p = JSON.parse(raw ?? '') as Partial<AlertPayload>;
    if ((p.channel === 'telegram' || p.channel === 'email') && typeof p.text === 'string') {
      return p as AlertPayload;
    }
  } catch {
    // fall through
  }
  throw new PermanentError('alert job without a valid payload');
}

export interface AlertSenderOptions {
  /** The worker's SMTP transports; without it each e-mail opens its own connection. */
  mailer?: Mailer;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * The `alert` job: sends one message on one channel with the telegram / email action code.
 * Telegram 429/5xx and SMTP 4xx or connection trouble throw RetryableError, so the worker
 * retries with backoff; nothing here touches event processing.
 */
export function createAlertJobHandler(opts: AlertSenderOptions = {}): JobHandler {
  return async ({ deps, job }) => {
    const p = parsePayload(job.payload);
    const ctx = {
      config: deps.config,
      logger: deps.logger,
      idempotencyKey: `b24h-alert-${job.id}`,
      mailer: opts.mailer,
      mailRoutes: deps.mailRoutes,
      fetch: opts.fetch,
      clock: deps.clock,
    };
    if (p.channel === 'telegram') {
      if (!p.chatId) throw new PermanentError('telegram alert without a chat id');
      // A portal's own alert chat is held like its steps' chats; the default chat is the
      // operator's (server/processing/telegram-chats.ts).
      const own = job.portal_id !== null && p.chatId !== deps.config.telegram.chatId;
      const telegramChats = own
        ? telegramChatGuard(deps, job.portal_id!, opts.fetch ?? globalThis.fetch)
        : undefined;
      await runTelegram(
        { type: 'telegram', chatId: p.chatId, text: p.text },
        { ...ctx, telegramChats },
      );
    } else {
      if (!p.to) throw new PermanentError('e-mail alert without a recipient');
      // A portal's own alert address is its admins' choice, held like its steps' recipients.
      const operatorRecipients = job.portal_id === null || p.to === deps.config.email.to;
      await runEmail(
        { type: 'email', to: p.to, subject: p.subject, text: p.text },
        { ...ctx, operatorRecipients },
      );
    }
    deps.metrics.alertsSent.inc({ channel: p.channel, kind: p.kind });
    deps.logger.info(
      { jobId: job.id, channel: p.channel, alert: p.key, phase: p.phase },
      'alert sent',
    );
  };
}

/** The `alert` job handler with no shared mailer (register `createAlertJobHandler({ mailer })` when there is one). */
export const alertJobHandler: JobHandler = createAlertJobHandler();
