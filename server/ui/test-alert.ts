import type { Deps } from '../deps.js';
import { uiLang } from '../lib/lang.js';
import { alertJobs, destinationsOf, enqueueAlertJobs } from '../alerts/send.js';
import type { AlertKind, AlertMessage } from '../alerts/types.js';
import { getPortalAlertChannels } from '../../db/stores/alerts.js';
import type { PortalRow } from '../../db/stores/portals.js';

/** One test alert per portal in this long (per instance): a button is not a relay. */
export const TEST_ALERT_INTERVAL_MS = 60_000;
const lastTest = new Map<string, number>();

/**
 * `sent`: the channels the test was queued on; `skipped`: channels the portal set that this
 * server has no transport for (`telegram`: no TELEGRAM_BOT_TOKEN, `email`: no SMTP_URL).
 */
export type TestAlertResult =
  | { sent: string[]; skipped: Array<'telegram' | 'email'> }
  | { refused: 'noOwnChannel' | 'tooSoon' };

/**
 * "Send test alert": one message on every channel of the portal's own (its Alerts page),
 * queued as ordinary `alert` jobs (server/alerts/send.ts), so it goes through the same
 * transports, retries and logs as a real alert, in the portal's language. The server's
 * default channels (TELEGRAM_CHAT_ID, ALERT_EMAIL_TO) are the operator's: a portal without
 * channels of its own sends nothing and never learns them, and a portal sends at most one
 * test a minute. Answers the channels it was queued on, or why nothing was.
 */
export async function sendTestAlert(
  deps: Deps,
  portal: PortalRow,
  notify: () => void = () => {},
): Promise<TestAlertResult> {
  const own = await getPortalAlertChannels(deps.db, portal.member_id);
  const to = destinationsOf(deps.config, own, false);
  if (!own.telegramChatId && !own.email) return { refused: 'noOwnChannel' };
  // A channel set here that the server cannot send to is said, not silently left out.
  const skipped: Array<'telegram' | 'email'> = [];
  if (own.telegramChatId && !to.telegram) skipped.push('telegram');
  if (own.email && !to.email) skipped.push('email');
  // Its channels, but the server has no transport for them: nothing to send (the page says so).
  if (!to.telegram && !to.email) return { sent: [], skipped };
  const now = deps.clock.now().getTime();
  if (now - (lastTest.get(portal.member_id) ?? -Infinity) < TEST_ALERT_INTERVAL_MS) {
    return { refused: 'tooSoon' };
  }
  lastTest.set(portal.member_id, now);
  const message: AlertMessage = {
    // Not a monitored condition: the kind only labels the alerts_sent metric and the log.
    kind: 'test' as AlertKind,
    phase: 'firing',
    key: `test:${portal.member_id}`,
    memberId: portal.member_id,
    ...(uiLang(portal.lang) === 'ru'
      ? {
          subject: `b24hooks: тестовое оповещение для ${portal.domain}`,
          text: `Тестовое оповещение b24hooks для ${portal.domain}. Оповещения этого портала приходят сюда.`,
        }
      : {
          subject: `b24hooks: test alert for ${portal.domain}`,
          text: `Test alert from b24hooks for ${portal.domain}. Alerts for this portal arrive here.`,
        }),
  };
  const { jobs, channels } = alertJobs(message, to, portal.id, deps.config.worker.maxAttempts, now);
  await enqueueAlertJobs(deps.db, jobs, now);
  if (jobs.length) notify();
  return {
    sent: channels.map((c) =>
      c === 'telegram' ? `telegram ${to.telegram}` : `e-mail ${to.email}`,
    ),
    skipped,
  };
}
