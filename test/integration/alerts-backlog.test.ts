import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { createAlertMonitor } from '../../server/alerts/index.js';
import { ALERT_SETTINGS, getAlertState } from '../../db/stores/alerts.js';
import { finishEvent } from '../../db/stores/events.js';
import { putSetting } from '../../db/stores/settings.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';
import type { ReceivedMail } from '../helpers/smtp-sink.js';

/** Subject and body of a received mail, headers unfolded and quoted-printable decoded. */
function readMail(m: ReceivedMail): { subject: string; body: string } {
  const [head = '', ...rest] = m.raw.split(/\r?\n\r?\n/);
  const subject = /^Subject: (.*)$/im.exec(head.replace(/\r?\n[ \t]+/g, ' '))?.[1] ?? '';
  const body = rest
    .join('\n\n')
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  return { subject, body };
}

describe('backlog alerts', () => {
  let h: AlertHarness;
  let portal: TestPortal;
  let p: { id: number; memberId: string };
  const MIN = 60_000;

  beforeEach(async () => {
    h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: '5', ALERT_COOLDOWN_MINUTES: '15' });
    portal = await seedPortal(h.t.deps);
    p = { id: portal.row.id, memberId: portal.memberId };
    const now = h.t.clock.now();
    await putSetting(h.t.deps.db, portal.memberId, ALERT_SETTINGS.telegramChatId, '-555', now);
    await putSetting(h.t.deps.db, portal.memberId, ALERT_SETTINGS.email, 'admin@acme.test', now);
  });
  afterEach(async () => {
    await h.close();
  });

  /** Marks the oldest `n` unprocessed events processed. */
  async function finish(n: number) {
    const ids = (await h.t.deps
      .db('events')
      .where({ status: 'received' })
      .orderBy('id')
      .limit(n)
      .pluck('id')) as number[];
    for (const id of ids) {
      await finishEvent(h.t.deps.db, id, { status: 'processed', at: h.t.clock.now().getTime() });
    }
  }

  it('sends one alert on each channel when the backlog crosses the threshold, naming its size', async () => {
    await h.addEvents(p, 5);
    expect((await h.checkAndSend()).sent).toEqual([]);
    expect(h.tg.sent).toHaveLength(0);

    await h.addEvents(p, 1);
    h.t.clock.advance(90_000);
    const report = await h.checkAndSend();

    // The portal's condition goes to its own channels; the total to the global defaults.
    expect(report.sent.map((s) => [s.key, s.phase, s.channels])).toEqual([
      ['backlog:total', 'firing', ['telegram', 'email']],
      [`backlog:${portal.memberId}`, 'firing', ['telegram', 'email']],
    ]);
    const chats = h.tg.sent.map((m) => String(m.chat_id)).sort();
    expect(chats).toEqual(['-100', '-555']);
    const own = h.tg.sent.find((m) => m.chat_id === '-555');
    expect(own?.text).toContain(`backlog of 6 events on ${portal.domain}`);
    expect(own?.text).toContain('threshold is 5');
    expect(own?.text).toContain('waiting 90 s');
    expect(own?.text).toContain('Dashboard: https://hooks.example.com/app');

    expect(h.smtp.messages.map((m) => m.to).sort()).toEqual([
      ['admin@acme.test'],
      ['ops@example.com'],
    ]);
    const mail = readMail(h.smtp.messages.find((m) => m.to[0] === 'admin@acme.test')!);
    expect(mail.subject).toContain(`ALERT: backlog of 6 events on ${portal.domain}`);
    expect(mail.body).toContain('Backlog: 6 unprocessed events');
    expect(mail.body).toContain('https://hooks.example.com/app');
    expect(await h.t.deps.metrics.alertsSent.get()).toMatchObject({
      values: expect.arrayContaining([
        expect.objectContaining({ labels: { channel: 'telegram', kind: 'backlog' }, value: 2 }),
        expect.objectContaining({ labels: { channel: 'email', kind: 'backlog' }, value: 2 }),
      ]),
    });
  });

  it('sends no second alert for the same condition before the cooldown, and a reminder after it', async () => {
    await h.addEvents(p, 8);
    await h.checkAndSend();
    expect(h.tg.sent).toHaveLength(2);

    for (const step of [1, 5, 8]) {
      h.t.clock.advance(step * MIN); // 14 minutes in all
      await h.addEvents(p, 1);
      expect((await h.checkAndSend()).sent).toEqual([]);
    }
    expect(h.tg.sent).toHaveLength(2);
    expect(h.smtp.messages).toHaveLength(2);

    h.t.clock.advance(1 * MIN);
    const report = await h.checkAndSend();
    expect(report.sent.map((s) => s.phase)).toEqual(['reminder', 'reminder']);
    expect(h.tg.sent).toHaveLength(4);
    expect(h.smtp.messages).toHaveLength(4);
    const reminder = h.tg.sent.find((m) => m.chat_id === '-555' && m.text.includes('REMINDER'));
    expect(reminder?.text).toContain('backlog of 11 events');
    expect(reminder?.text).toContain('still above the threshold');
  });

  it('sends a recovery notice once the backlog falls below 80 % of the threshold, not before', async () => {
    await h.addEvents(p, 7);
    await h.checkAndSend();
    expect(h.tg.sent).toHaveLength(2);

    // 5 is no longer above the threshold but not below 4 either: no flapping, no message.
    await finish(2);
    h.t.clock.advance(MIN);
    expect((await h.checkAndSend()).sent).toEqual([]);

    await finish(2);
    h.t.clock.advance(MIN);
    const report = await h.checkAndSend();
    expect(report.sent.map((s) => [s.key, s.phase])).toEqual([
      ['backlog:total', 'recovered'],
      [`backlog:${portal.memberId}`, 'recovered'],
    ]);
    const notice = h.tg.sent.find((m) => m.chat_id === '-555' && m.text.includes('RECOVERED'));
    expect(notice?.text).toContain(`backlog on ${portal.domain}`);
    expect(notice?.text).toContain('fell to 3');
    expect(h.smtp.messages.map((m) => readMail(m).subject)).toEqual(
      expect.arrayContaining([expect.stringContaining('RECOVERED: backlog')]),
    );
    expect(await getAlertState(h.t.deps.db, `backlog:${portal.memberId}`)).toMatchObject({
      state: 'ok',
    });

    // Quiet afterwards, even past the cooldown.
    h.t.clock.advance(30 * MIN);
    expect((await h.checkAndSend()).sent).toEqual([]);
  });

  it('does not alert again after a restart for a condition that is already firing', async () => {
    await h.addEvents(p, 9);
    await h.checkAndSend();
    expect(h.tg.sent).toHaveLength(2);

    h.t.clock.advance(2 * MIN);
    const restarted = createAlertMonitor(h.t.deps);
    expect((await restarted.checkOnce()).sent).toEqual([]);
    expect(await h.t.deps.db('jobs').where({ type: 'alert', status: 'pending' })).toHaveLength(0);
  });

  it('uses the global defaults for a portal without channels of its own', async () => {
    const other = await seedPortal(h.t.deps);
    await h.addEvents({ id: other.row.id, memberId: other.memberId }, 6);
    await h.checkAndSend();
    expect(h.tg.sent.map((m) => String(m.chat_id))).toEqual(['-100', '-100']);
    expect(h.tg.sent.map((m) => m.text).join('\n')).toContain(`on ${other.domain}`);
  });
});

describe('backlog alerts and the settling time', () => {
  let h: AlertHarness;
  afterEach(async () => {
    await h.close();
  });

  it('does not count events still in their settling time, and counts them once they are due', async () => {
    h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: '5', EVENT_SETTLE_MS: '1000' });
    const portal = await seedPortal(h.t.deps);
    const p = { id: portal.row.id, memberId: portal.memberId };
    // Eight deliveries in the last second: a steady stream, not a backlog.
    await h.addEvents(p, 8);
    h.t.clock.advance(999);
    expect((await h.checkAndSend()).sent).toEqual([]);
    // The control: a millisecond later they are due and still unprocessed.
    h.t.clock.advance(1);
    const report = await h.checkAndSend();
    expect(report.sent.map((s) => [s.key, s.phase])).toEqual([
      ['backlog:total', 'firing'],
      [`backlog:${portal.memberId}`, 'firing'],
    ]);
    expect(h.tg.sent.find((m) => m.chat_id === '-100')?.text).toContain('backlog of 8 events');
  });

  it('recovers at the smallest thresholds too: 1 (back to 0) and 2 (a backlog of 1 is under 80 %)', async () => {
    for (const [threshold, left] of [
      [1, 0],
      [2, 1],
    ] as const) {
      await h.close();
      h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: String(threshold) });
      const portal = await seedPortal(h.t.deps);
      await h.addEvents({ id: portal.row.id, memberId: portal.memberId }, threshold + 2);
      expect((await h.checkAndSend()).sent.map((s) => s.phase)).toContain('firing');
      const ids = (await h.t.deps
        .db('events')
        .orderBy('id')
        .limit(threshold + 2 - left)
        .pluck('id')) as number[];
      for (const id of ids) {
        await finishEvent(h.t.deps.db, id, { status: 'processed', at: h.t.clock.now().getTime() });
      }
      h.t.clock.advance(60_000);
      const report = await h.checkAndSend();
      expect([threshold, report.sent.map((s) => [s.key, s.phase])]).toEqual([
        threshold,
        expect.arrayContaining([['backlog:total', 'recovered']]),
      ]);
      expect(h.tg.sent.at(-1)?.text).toContain(
        `fell to ${left}, below ${threshold * 0.8} (80 % of the threshold ${threshold})`,
      );
    }
  });
});
