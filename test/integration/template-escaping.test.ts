import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ALERT_SETTINGS } from '../../db/stores/alerts.js';
import { putSetting } from '../../db/stores/settings.js';
import type { EventMap } from '../../server/rules/model.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';
import { htmlText, mailPart, startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';
import { startTelegramStandin, type TelegramStandin } from '../helpers/telegram-standin.js';

const TITLE = 'Order <b>&_ "x" *y* [z]. (1+1=2)!';

/** A won deal mails the title as text and HTML and posts it to Telegram in every parse mode. */
function escapingMap(urls: { accounting: string }): EventMap {
  const v = validateEventMap({
    rules: [
      {
        name: 'Won deal: tell everyone',
        on: ['ONCRMDEALUPDATE'],
        when: [{ field: 'STAGE_ID', becomes: 'WON' }],
        actions: [
          {
            type: 'email',
            to: 'sales@example.test',
            subject: 'Won: {{deal.TITLE}}',
            text: 'Deal {{deal.TITLE}} is won.',
            html: '<p>Deal <i>{{deal.TITLE}}</i> is won ({{deal.OPPORTUNITY | money:RUB}}).</p>',
          },
          { type: 'telegram', parseMode: 'HTML', text: '<b>Won</b>: {{deal.TITLE}}' },
          { type: 'telegram', parseMode: 'MarkdownV2', text: '*Won*: {{deal.TITLE}}' },
          { type: 'telegram', parseMode: 'Markdown', text: '*Won*: {{deal.TITLE}}' },
          { type: 'telegram', text: 'Won: {{deal.TITLE | upper}}' },
          {
            type: 'http',
            method: 'POST',
            url: `${urls.accounting}/won`,
            body: { note: 'Deal {{deal.TITLE}} "won"', title: '{{deal.TITLE}}' },
          },
        ],
      },
    ],
  });
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.map;
}

describe('values reach every destination as written (escaped for the place they go)', () => {
  let s: PaidDealScenario;
  let smtp: SmtpSink;
  let tg: TelegramStandin;

  beforeAll(async () => {
    smtp = await startSmtpSink();
    tg = await startTelegramStandin();
    s = await startPaidDealScenario(escapingMap, {
      SMTP_URL: smtp.url,
      ALERT_EMAIL_FROM: 'shop@example.test',
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_CHAT_ID: '-100999',
      TELEGRAM_API_URL: tg.url,
    });
    // Steps without a chatId go to the portal's own alert chat.
    await putSetting(
      s.h.t.deps.db,
      s.portal.memberId,
      ALERT_SETTINGS.telegramChatId,
      '-100500',
      s.h.t.clock.now(),
    );
    const deal = await s.portal.addDeal({ TITLE, STAGE_ID: 'NEW', OPPORTUNITY: '1234.5' });
    await s.drain();
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await s.drain();
  });
  afterAll(async () => {
    await s?.close();
    await smtp?.close();
    await tg?.close();
  });

  it('runs every step of the rule', async () => {
    const runs = await s.h.t.deps.db('action_runs').orderBy('id');
    expect(runs.map((r) => [r.action_type, r.status, r.error])).toEqual([
      ['email', 'succeeded', null],
      ['telegram', 'succeeded', null],
      ['telegram', 'succeeded', null],
      ['telegram', 'succeeded', null],
      ['telegram', 'succeeded', null],
      ['http', 'succeeded', null],
    ]);
  });

  it("posts steps without a chatId to the portal's own chat, never to TELEGRAM_CHAT_ID", () => {
    expect([...new Set(tg.sent.map((m) => String(m.chat_id)))]).toEqual(['-100500']);
  });

  it('e-mails the title intact in the HTML part and the text part', () => {
    const raw = smtp.messages.at(-1)?.raw ?? '';
    const html = mailPart(raw, 'text/html') ?? '';
    expect(html).toContain('&lt;b&gt;&amp;_ &quot;x&quot;');
    expect(htmlText(html)).toBe(`Deal ${TITLE} is won (1 234.50 RUB).`);
    expect(mailPart(raw, 'text/plain')).toBe(`Deal ${TITLE} is won.`);
  });

  it('posts the title to Telegram so that it parses and reads as written in each mode', () => {
    expect(tg.sent.map((m) => [m.parse_mode, m.plain])).toEqual([
      ['HTML', `Won: ${TITLE}`],
      ['MarkdownV2', `Won: ${TITLE}`],
      ['Markdown', `Won: ${TITLE}`],
      [undefined, `Won: ${TITLE.toUpperCase()}`],
    ]);
  });

  it('keeps a JSON body valid JSON with the value intact', () => {
    const req = s.accounting.requests.at(-1);
    expect(JSON.parse(req?.body ?? '')).toEqual({ note: `Deal ${TITLE} "won"`, title: TITLE });
  });
});
