import type { Deps } from '../deps.js';
import { uiLang } from '../lib/lang.js';
import { alertDestinations, alertJobs, enqueueAlertJobs } from '../alerts/send.js';
import type { AlertKind, AlertMessage } from '../alerts/types.js';
import type { PortalRow } from '../../db/stores/portals.js';

/**
 * "Send test alert": one message on every channel the portal's alerts would use, queued as
 * ordinary `alert` jobs (server/alerts/send.ts), so it goes through the same transports,
 * retries and logs as a real alert, in the portal's language. Answers the channels it was
 * queued on.
 */
export async function sendTestAlert(
  deps: Deps,
  portal: PortalRow,
  notify: () => void = () => {},
): Promise<string[]> {
  const to = await alertDestinations(deps, portal.member_id);
  const now = deps.clock.now().getTime();
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
  return channels.map((c) => (c === 'telegram' ? `telegram ${to.telegram}` : `e-mail ${to.email}`));
}
