import type { Env } from '../../server/config.js';
import { createServices, type ServiceOptions, type Services } from '../../server/services.js';
import { insertEvents, type EventStatus } from '../../db/stores/events.js';
import { insertJobs } from '../../db/stores/jobs.js';
import { startSmtpSink, type SmtpSink } from './smtp-sink.js';
import { startTelegramStandin, type TelegramStandin } from './telegram-standin.js';
import { createTestDeps, type TestDeps } from './test-deps.js';

export interface AlertHarness {
  t: TestDeps;
  services: Services;
  tg: TelegramStandin;
  smtp: SmtpSink;
  /** Stores events as the intake would (with their process_event jobs when `withJobs`). */
  addEvents(
    portal: { id: number; memberId: string },
    n: number,
    opts?: { status?: EventStatus; event?: string; entity?: boolean; withJobs?: boolean },
  ): Promise<number[]>;
  /** One monitor pass, then the worker until nothing is due (sends the alerts). */
  checkAndSend(): Promise<Awaited<ReturnType<Services['alerts']['checkOnce']>>>;
  close(): Promise<void>;
}

/**
 * Real deps and services, the Telegram Bot API stand-in and a real SMTP server, wired as
 * the alert channels (TELEGRAM_CHAT_ID `-100`, ALERT_EMAIL_TO `ops@example.com`).
 */
export async function startAlertHarness(
  env: Env = {},
  opts: ServiceOptions = {},
): Promise<AlertHarness> {
  const tg = await startTelegramStandin();
  const smtp = await startSmtpSink();
  const t = await createTestDeps({
    APP_URL: 'https://hooks.example.com',
    TELEGRAM_API_URL: tg.url,
    TELEGRAM_BOT_TOKEN: tg.token,
    TELEGRAM_CHAT_ID: '-100',
    SMTP_URL: smtp.url,
    ALERT_EMAIL_TO: 'ops@example.com',
    ALERT_EMAIL_FROM: 'b24hooks <alerts@hooks.example.com>',
    ALERT_BACKLOG_THRESHOLD: '5',
    ALERT_COOLDOWN_MINUTES: '15',
    ...env,
  });
  const services = createServices(t.deps, opts);
  let seq = 0;
  return {
    t,
    services,
    tg,
    smtp,
    async addEvents(portal, n, o = {}) {
      const now = t.clock.now().getTime();
      const ids: number[] = [];
      for (let i = 0; i < n; i++) {
        seq++;
        const entity = o.entity ?? true;
        const [id] = await insertEvents(t.deps.db, [
          {
            portal_id: portal.id,
            member_id: portal.memberId,
            event: o.event ?? 'ONCRMDEALUPDATE',
            entity_type: entity ? 'deal' : null,
            entity_id: entity ? String(seq) : null,
            status: o.status ?? 'received',
            received_at: now,
          },
        ]);
        ids.push(id!);
        if (o.withJobs) {
          await insertJobs(
            t.deps.db,
            [
              {
                type: 'process_event',
                event_id: id!,
                portal_id: portal.id,
                entity_key: entity ? `${portal.id}:deal:${seq}` : null,
                payload: null,
                max_attempts: t.deps.config.worker.maxAttempts,
                run_at: now,
                topic: o.event ?? 'ONCRMDEALUPDATE',
              },
            ],
            now,
          );
        }
      }
      return ids;
    },
    async checkAndSend() {
      const report = await services.alerts.checkOnce();
      await services.worker.drain();
      return report;
    },
    async close() {
      await services.close(1000);
      await t.close();
      await Promise.all([tg.close(), smtp.close()]);
    },
  };
}
