import { afterEach, describe, expect, it } from '@jest/globals';
import { putSetting } from '../../../db/stores/settings.js';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession } from './ui-client.js';

/**
 * A portal with no alert channel, on a server with none either: its alerts are sent nowhere
 * (the monitor logs it). A walk saw "No alert is firing" while failed events piled up and
 * the failed-events alert was dropped; the dashboard says so now, and the Alerts page says
 * what is sent.
 */
describe('alerts that go nowhere', () => {
  let h: UiHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('the dashboard says so, with a way to the Alerts page, in English and Russian', async () => {
    h = await startUiHarness();
    const admin = await openSession(h);
    const page = await getPage(h, '/ui', admin.cookie);
    expect(page.html).toMatch(
      /<p class="warn" id="alerts-nowhere">Alerts of this portal go nowhere: [^<]*<a href="[^"]*\/ui\/alerts[^"]*">Set one up<\/a>/,
    );
    const ru = await openSession(h, { lang: 'ru' });
    expect((await getPage(h, '/ui', ru.cookie)).html).toContain(
      'Оповещения этого портала никуда не уходят',
    );
    const alerts = await getPage(h, '/ui/alerts', admin.cookie);
    expect(alerts.html).toContain('id="alert-kinds"');
    expect(alerts.html.match(/<li data-kind="/g)).toHaveLength(6);
    expect(alerts.html).toContain('<li data-kind="failed">Failed events</li>');
  });

  it('counts an alert address inside the server’s network, saved before that was refused, as none', async () => {
    h = await startUiHarness({ env: { SMTP_URL: 'smtp://u:p@127.0.0.1:1' } });
    const admin = await openSession(h);
    await putSetting(
      h.t.deps.db,
      h.portal.memberId,
      'alerts.email',
      'ops@mail.internal',
      h.t.clock.now(),
    );
    expect((await getPage(h, '/ui', admin.cookie)).html).toContain('id="alerts-nowhere"');
    // Control: a public address of its own is a channel.
    await putSetting(
      h.t.deps.db,
      h.portal.memberId,
      'alerts.email',
      'ops@example.com',
      h.t.clock.now(),
    );
    expect((await getPage(h, '/ui', admin.cookie)).html).not.toContain('id="alerts-nowhere"');
  });

  it('says nothing where the server has a default channel', async () => {
    h = await startUiHarness({
      env: { TELEGRAM_BOT_TOKEN: '123:abc', TELEGRAM_CHAT_ID: '-100500' },
    });
    const admin = await openSession(h);
    const page = await getPage(h, '/ui', admin.cookie);
    expect(page.status).toBe(200);
    expect(page.html).toContain('<h2>Alerts firing</h2>');
    expect(page.html).not.toContain('id="alerts-nowhere"');
  });
});
