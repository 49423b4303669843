import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { claimTelegramChat, telegramChatLinks } from '../../../db/stores/telegram-chats.js';
import { findPortalByMemberId } from '../../../db/stores/portals.js';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import {
  BOT_USERNAME,
  startTelegramStandin,
  type TelegramStandin,
} from '../../helpers/telegram-standin.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui-client.js';

/**
 * The Alerts page's "Telegram chats of this portal": an admin asks for a code, the bot posts
 * it into the chat, and typing it back links the chat to the portal, taking it from another
 * portal that held it by posting there first (server/ui/telegram-link.ts).
 */
describe('linking a Telegram chat on the Alerts page', () => {
  let h: UiHarness;
  let tg: TelegramStandin;
  let admin: UiSession;
  beforeAll(async () => {
    tg = await startTelegramStandin();
    h = await startUiHarness({
      env: { TELEGRAM_BOT_TOKEN: tg.token, TELEGRAM_API_URL: tg.url },
    });
    tg.addChat('@sales_team', -100320);
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
    await tg.close();
  });

  it('names the bot to add to the chat, and where a chat id is found', async () => {
    const page = await getPage(h, '/ui/alerts', admin.cookie);
    expect(page.html).toContain(
      `href="https://t.me/${BOT_USERNAME}" target="_blank" rel="noopener" id="bot-name" translate="no">@${BOT_USERNAME}</a>`,
    );
    expect(page.html).toContain('the number after # in the address');
    // The bot token never reaches the page.
    expect(page.html).not.toContain(tg.token);
  });

  it('links a chat another portal held, with the code the bot posted there', async () => {
    const portal = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    await claimTelegramChat(h.t.deps.db, '-100321', 1_000_000, h.t.clock.now().getTime());
    const page = await getPage(h, '/ui/alerts', admin.cookie);
    expect(page.html).toContain('id="no-linked-chats"');
    // As the alert chat it is refused, and the refusal points at linking it.
    const refused = await postForm(
      h,
      '/ui/alerts',
      { telegram: '-100321', email: '', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(refused.status).toBe(400);
    expect(refused.html).toContain('link this one below if it is yours');

    // A public chat cannot be linked: anyone could read the code there.
    const before = tg.sent.length;
    const open = await postForm(
      h,
      '/ui/alerts/telegram/code',
      { chat: '@Sales_Team', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(open.status).toBe(400);
    expect(open.html).toContain('@sales_team is a public chat, where anyone can read a code');
    expect(tg.sent.length).toBe(before);

    const asked = await postForm(
      h,
      '/ui/alerts/telegram/code',
      { chat: '-100321', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(asked.status).toBe(200);
    expect(asked.html).toContain('id="link-form"');
    // The admin who asked for the wrong chat can go back to asking for another one.
    expect(asked.html).toMatch(/href="\/ui\/alerts[^"]*#chats" id="link-other-chat">Another chat</);
    expect(asked.html).toContain('The bot posted a code in the chat -100321');
    const sent = tg.sent.at(-1)!;
    expect(String(sent.chat_id)).toBe('-100321');
    expect(sent.text).toContain(h.portal.domain);
    const code = /code (\d{4} \d{4})/.exec(sent.text)![1]!;
    // The code is in the chat only: never on the page.
    expect(asked.html).not.toContain(code);
    expect(asked.html).not.toContain(code.replace(' ', ''));

    const wrong = await postForm(
      h,
      '/ui/alerts/telegram/link',
      {
        chat: '-100321',
        code: code === '0000 0000' ? '0000 0001' : '0000 0000',
        _csrf: csrfOf(page.html),
      },
      admin.cookie,
    );
    expect(wrong.status).toBe(400);
    expect(wrong.html).toContain('wrong code; tries left: 4');
    expect(wrong.html).toContain('id="link-form"');
    expect(await telegramChatLinks(h.t.deps.db, '-100321')).toEqual([]);

    const linked = await postForm(
      h,
      '/ui/alerts/telegram/link',
      { chat: '-100321', code, _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(linked.status).toBe(200);
    expect(linked.html).toContain('The chat -100321 is linked to this portal.');
    expect(linked.html).toMatch(/id="linked-chats"[\s\S]*-100321/);
    expect(await telegramChatLinks(h.t.deps.db, '-100321')).toEqual([portal.id]);

    // Now it is this portal's alert chat to choose.
    const saved = await postForm(
      h,
      '/ui/alerts',
      { telegram: '-100321', email: '', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(saved.status).toBe(200);
    expect(saved.html).toContain('id="saved"');

    const unlinked = await postForm(
      h,
      '/ui/alerts/telegram/unlink',
      { chat: '-100321', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(unlinked.html).toContain('The chat -100321 is no longer linked to this portal.');
    expect(await telegramChatLinks(h.t.deps.db, '-100321')).toEqual([]);
  });

  it('says in Russian why a code was not sent, and lets only admins link', async () => {
    const ru = await openSession(h, { lang: 'ru' });
    const page = await getPage(h, '/ui/alerts', ru.cookie);
    expect(page.html).toContain('Чаты Telegram этого портала');
    const res = await postForm(
      h,
      '/ui/alerts/telegram/code',
      { chat: '@nobody_here', _csrf: csrfOf(page.html) },
      ru.cookie,
    );
    expect(res.status).toBe(400);
    expect(res.html).toContain('Не привязан:');
    expect(res.html).toContain('бот добавлен в чат?');

    const manager = await openSession(h, { userId: 2 });
    const seen = await getPage(h, '/ui/alerts', manager.cookie);
    expect(seen.html).not.toContain('id="link-code-form"');
    const before = tg.sent.length;
    const tried = await postForm(
      h,
      '/ui/alerts/telegram/code',
      { chat: '-100999', _csrf: csrfOf(seen.html) },
      manager.cookie,
    );
    expect(tried.status).toBe(403);
    expect(tg.sent.length).toBe(before);
  });

  it('offers a new code, not the code field again, once the code has ended', async () => {
    const page = await getPage(h, '/ui/alerts', admin.cookie);
    const asked = await postForm(
      h,
      '/ui/alerts/telegram/code',
      { chat: '-100654', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(asked.html).toContain('id="link-form"');
    const code = /code (\d{4}) (\d{4})/.exec(tg.sent.at(-1)!.text)!.slice(1).join('');
    const wrong = code === '00000000' ? '00000001' : '00000000';
    const answers = [];
    for (let i = 0; i < 5; i++) {
      answers.push(
        await postForm(
          h,
          '/ui/alerts/telegram/link',
          { chat: '-100654', code: wrong, _csrf: csrfOf(page.html) },
          admin.cookie,
        ),
      );
    }
    // Control: after a wrong code with tries left, the code field stays.
    expect(answers[0]!.html).toContain('id="link-form"');
    const last = answers[4]!;
    expect(last.html).toContain('too many wrong codes: ask for a new one');
    // "Ask for a new one": the page offers that, with the chat filled in.
    expect(last.html).not.toContain('id="link-form"');
    expect(last.html).toMatch(/id="link-chat-id" value="-100654"/);
  });
});

/** A code asked for again while the last one is still good (a portal of its own: 5 asks per portal in 10 min). */
describe('asking again for a code still in the chat', () => {
  let h: UiHarness;
  let tg: TelegramStandin;
  let admin: UiSession;
  beforeAll(async () => {
    tg = await startTelegramStandin();
    h = await startUiHarness({
      env: { TELEGRAM_BOT_TOKEN: tg.token, TELEGRAM_API_URL: tg.url },
    });
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
    await tg.close();
  });

  it('offers the code field again when a code sent a moment ago is asked for anew', async () => {
    const page = await getPage(h, '/ui/alerts', admin.cookie);
    const ask = () =>
      postForm(
        h,
        '/ui/alerts/telegram/code',
        { chat: '-100777', _csrf: csrfOf(page.html) },
        admin.cookie,
      );
    expect((await ask()).html).toContain('id="link-form"');
    const code = /code (\d{4}) (\d{4})/.exec(tg.sent.at(-1)!.text)!.slice(1).join('');
    const sent = tg.sent.length;
    // The admin left the page to read the chat and comes back: no second code, but the page
    // says "type that one", so the field to type it in is there.
    const again = await ask();
    expect(tg.sent.length).toBe(sent);
    expect(again.html).toContain('type that one');
    expect(again.html).toContain('id="link-form"');
    expect(again.html).toMatch(/name="chat" value="-100777"/);
    const linked = await postForm(
      h,
      '/ui/alerts/telegram/link',
      { chat: '-100777', code, _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(linked.html).toContain('The chat -100777 is linked to this portal.');
  });

  it('does not offer the code field for a code typed wrong too often', async () => {
    const page = await getPage(h, '/ui/alerts', admin.cookie);
    await postForm(
      h,
      '/ui/alerts/telegram/code',
      { chat: '-100778', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    const code = /code (\d{4}) (\d{4})/.exec(tg.sent.at(-1)!.text)!.slice(1).join('');
    const wrong = code === '00000000' ? '00000001' : '00000000';
    for (let i = 0; i < 5; i++) {
      await postForm(
        h,
        '/ui/alerts/telegram/link',
        { chat: '-100778', code: wrong, _csrf: csrfOf(page.html) },
        admin.cookie,
      );
    }
    const again = await postForm(
      h,
      '/ui/alerts/telegram/code',
      { chat: '-100778', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(again.status).toBe(400);
    expect(again.html).not.toContain('type that one');
    expect(again.html).toContain('typed wrong too often');
    expect(again.html).not.toContain('id="link-form"');
  });

  /**
   * The test alert went out on the Telegram chat and said nothing of the e-mail the admin had
   * also set, which this server (no SMTP_URL) cannot send: the admin believed both worked.
   */
  it('a test alert says which channel set here the server cannot send to', async () => {
    expect(h.t.deps.config.email.smtpUrl).toBeFalsy();
    const page = await getPage(h, '/ui/alerts', admin.cookie);
    const saved = await postForm(
      h,
      '/ui/alerts',
      { telegram: '-100777', email: 'ops@example.com', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(saved.status).toBe(200);
    const test = await postForm(h, '/ui/alerts/test', { _csrf: csrfOf(page.html) }, admin.cookie);
    expect(test.status).toBe(200);
    // Control: it went to the chat.
    expect(test.html).toMatch(/id="test-sent"[^<]*<span translate="no">telegram -100777</);
    expect(test.html).toContain('id="test-skipped"');
    expect(test.html).toContain('Not sent to the e-mail set here: this server has no SMTP_URL');
  });
});

/**
 * The Bot API reads `-0100999` as chat -100999, but the page compared the text: a code asked
 * for `-0100999` went into the operator's alert chat (naming the asking portal's domain, which
 * anyone may choose), each spelling got a code of its own within the 10 minutes, and the
 * operator's chat could be saved as a portal's alert chat (whose alerts then went nowhere).
 */
describe('a chat typed with leading zeros', () => {
  let h: UiHarness;
  let tg: TelegramStandin;
  let admin: UiSession;
  beforeAll(async () => {
    tg = await startTelegramStandin();
    h = await startUiHarness({
      env: { TELEGRAM_BOT_TOKEN: tg.token, TELEGRAM_API_URL: tg.url, TELEGRAM_CHAT_ID: '-100999' },
    });
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
    await tg.close();
  });

  it("is the same chat: the operator's stays refused, and one code per chat holds", async () => {
    const csrf = csrfOf((await getPage(h, '/ui/alerts', admin.cookie)).html);
    const ask = (chat: string) =>
      postForm(h, '/ui/alerts/telegram/code', { chat, _csrf: csrf }, admin.cookie);
    for (const chat of ['-0100999', '-00100999']) {
      const refused = await ask(chat);
      expect([chat, refused.status]).toEqual([chat, 400]);
      expect(refused.html).toContain('this is the server&#39;s alert chat');
    }
    const saved = await postForm(
      h,
      '/ui/alerts',
      { telegram: '-0100999', email: '', _csrf: csrf },
      admin.cookie,
    );
    expect(saved.status).toBe(400);
    expect(tg.sent).toEqual([]);

    // Control: another chat gets its code, once, however it is spelled.
    expect((await ask('-100555')).status).toBe(200);
    expect(tg.sent.map((m) => String(m.chat_id))).toEqual(['-100555']);
    const again = await ask('-000100555');
    expect(again.status).toBe(400);
    expect(again.html).toContain('a code was sent to this chat less than 10 minutes ago');
    expect(tg.sent).toHaveLength(1);
    // And an alert chat is kept in the one spelling.
    const mine = await postForm(
      h,
      '/ui/alerts',
      { telegram: '-0100556', email: '', _csrf: csrf },
      admin.cookie,
    );
    expect(mine.status).toBe(200);
    expect(mine.html).toMatch(/name="telegram"[^>]*value="-100556"/);
  });
});
