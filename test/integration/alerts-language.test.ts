import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { findPortalById, updatePortal } from '../../db/stores/portals.js';
import { sendTestAlert, TEST_ALERT_INTERVAL_MS } from '../../server/ui/test-alert.js';
import { ALERT_SETTINGS } from '../../db/stores/alerts.js';
import { putSetting } from '../../db/stores/settings.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';

describe("alerts in the portal's language", () => {
  let h: AlertHarness;
  let portal: TestPortal;

  beforeEach(async () => {
    h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: '1000' });
    portal = await seedPortal(h.t.deps);
  });
  afterEach(async () => {
    await h.close();
  });

  /** The portal's own alert channels, as its admin sets them on the Alerts page. */
  async function ownChannels(memberId: string) {
    const now = h.t.clock.now();
    await putSetting(h.t.deps.db, memberId, ALERT_SETTINGS.telegramChatId, '-100777', now);
    await putSetting(h.t.deps.db, memberId, ALERT_SETTINGS.email, 'admin@portal.example', now);
  }

  async function failTwo() {
    const ids = await h.addEvents({ id: portal.row.id, memberId: portal.memberId }, 2);
    const now = h.t.clock.now().getTime();
    await h.t.deps
      .db('events')
      .whereIn('id', ids)
      .update({ status: 'failed', processed_at: now, last_error: 'HTTP 500', evaluated_at: now });
    h.t.clock.advance(1_000);
    await h.checkAndSend();
  }

  it('writes the failed-events digest in Russian for a portal installed in Russian', async () => {
    await updatePortal(h.t.deps.db, portal.row.id, { lang: 'ru' });
    h.t.deps.portals.invalidate(portal.memberId);
    await failTwo();
    const text = h.tg.sent[0]?.text ?? '';
    expect(text).toContain(
      `b24hooks СВОДКА: 2 события с окончательной ошибкой на ${portal.domain}`,
    );
    expect(text).toContain('Последние ошибки:');
    expect(h.smtp.messages.at(-1)?.raw).toContain('Subject: =?UTF-8?');
  });

  it('writes it in English for a portal in another language (control)', async () => {
    await updatePortal(h.t.deps.db, portal.row.id, { lang: 'de' });
    h.t.deps.portals.invalidate(portal.memberId);
    await failTwo();
    expect(h.tg.sent[0]?.text).toContain(`2 events failed for good on ${portal.domain}`);
  });

  it('sends the test alert in the portal language too', async () => {
    await updatePortal(h.t.deps.db, portal.row.id, { lang: 'ru' });
    await ownChannels(portal.memberId);
    const row = await findPortalById(h.t.deps.db, portal.row.id);
    expect(await sendTestAlert(h.t.deps, row!)).toEqual({
      sent: ['telegram -100777', 'e-mail admin@portal.example'],
      skipped: [],
    });
    await h.services.worker.drain();
    expect(h.tg.sent.at(-1)?.text).toBe(
      `Тестовое оповещение b24hooks для ${portal.domain}. Оповещения этого портала приходят сюда.`,
    );
  });

  it("never sends a portal's test alert to the operator's channels, nor says what they are", async () => {
    const row = (await findPortalById(h.t.deps.db, portal.row.id))!;
    // The server has default channels (TELEGRAM_CHAT_ID -100, ALERT_EMAIL_TO ops@example.com)
    // and this portal none of its own.
    expect(await sendTestAlert(h.t.deps, row)).toEqual({ refused: 'noOwnChannel' });
    expect(await h.t.deps.db('jobs').where({ type: 'alert' })).toHaveLength(0);
    // Control: with channels of its own it sends there, once a minute at most.
    await ownChannels(portal.memberId);
    expect(await sendTestAlert(h.t.deps, row)).toMatchObject({ sent: expect.any(Array) });
    expect(await sendTestAlert(h.t.deps, row)).toEqual({ refused: 'tooSoon' });
    h.t.clock.advance(TEST_ALERT_INTERVAL_MS);
    expect(await sendTestAlert(h.t.deps, row)).toMatchObject({ sent: expect.any(Array) });
    await h.services.worker.drain();
    expect(h.tg.sent.map((m) => m.chat_id)).toEqual(['-100777', '-100777']);
  });
});
