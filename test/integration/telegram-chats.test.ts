import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { translateError } from '../../server/ui/i18n-messages.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { putSetting } from '../../db/stores/settings.js';
import { getTelegramChat, unlinkTelegramChat } from '../../db/stores/telegram-chats.js';
import { linkWithCode, sendLinkCode } from '../../server/ui/telegram-link.js';
import { telegramChatGuard } from '../../server/processing/telegram-chats.js';
import { translateMessage } from '../../server/ui/i18n-messages.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal } from '../helpers/event-builder.js';
import { alertDestinations, alertJobs, enqueueAlertJobs } from '../../server/alerts/send.js';

/**
 * Every portal's `telegram` steps and alerts post through the operator's one bot, which is
 * in every chat a portal added it to: a chat is held by the first portal that posted there,
 * and the operator's TELEGRAM_CHAT_ID (-100 here) is no portal's, by id or by `@name`.
 */
describe('telegram chats between portals', () => {
  let h: AlertHarness;
  beforeEach(async () => {
    h = await startAlertHarness({}, { worker: { concurrency: 1 } });
    h.tg.addChat('@b_sales', -100555);
    h.tg.addChat('@ops_alerts', -100);
  });
  afterEach(async () => {
    await h.close();
  });

  const postTo = (memberId: string, chatId: string) =>
    saveRuleMap(
      h.t.deps.db,
      memberId,
      {
        rules: [
          {
            name: 'tell',
            on: ['ONCRMDEALUPDATE'],
            actions: [{ type: 'telegram', chatId, text: `from ${memberId}` }],
          },
        ],
      },
      h.t.clock.now(),
    );
  const runs = async (portalId: number) =>
    (await h.t.deps
      .db('action_runs as r')
      .join('events as e', 'e.id', 'r.event_id')
      .where('e.portal_id', portalId)
      .orderBy('r.id')
      .select('r.status', 'r.error')) as Array<{ status: string; error: string | null }>;
  const deliver = async (p: { row: { id: number }; memberId: string }) => {
    await h.addEvents({ id: p.row.id, memberId: p.memberId }, 1, { withJobs: true, entity: false });
    return h.services.worker.drain();
  };

  /**
   * Telegram answers 429 to a chat (or the one bot) sending too fast. Read as a retryable
   * failure, each one spent one of the event's attempts: a portal whose 50 deals were won at
   * once, or any portal while another flooded the bot, used up its events' attempts.
   */
  it("waits out Telegram's flood control without spending the event's attempts", async () => {
    const a = await seedPortal(h.t.deps);
    await postTo(a.memberId, '-100555');
    h.tg.failNext({ code: 429, description: 'Too Many Requests: retry after 7', retryAfter: 7 });
    const [held] = await deliver(a);
    expect(held?.outcome).toBe('paused');
    expect(h.tg.sent).toHaveLength(0);
    const job = await h.t.deps.db('jobs').where({ type: 'process_event' }).first();
    expect(job).toMatchObject({ attempts: 0 });
    expect(Number(job.run_at) - h.t.clock.now().getTime()).toBe(7_000);
    expect((await runs(a.row.id)).at(-1)?.error).toContain("Telegram's flood control (429)");
    h.t.clock.advance(7_000);
    expect((await h.services.worker.drain()).map((o) => o.outcome)).toEqual(['done']);
    expect(h.tg.sent.map((m) => m.chat_id)).toEqual(['-100555']);
  });

  it("never posts a portal's step into a chat another portal holds, by id or by @name", async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    // B posts to its sales channel first: the chat is B's from then on.
    await postTo(b.memberId, '@b_sales');
    await deliver(b);
    // Sent to the id the name resolved to (the chat the guard checked).
    expect(h.tg.sent.map((m) => m.chat_id)).toEqual(['-100555']);
    expect(await getTelegramChat(h.t.deps.db, '-100555')).toMatchObject({
      portal_id: b.row.id,
      username: 'b_sales',
    });

    // A names the same chat by its id (also spelled with a leading zero or sign, which the
    // Bot API reads as the same number), then by its name: nothing is sent.
    for (const chat of ['-100555', '-0100555', '@B_Sales']) {
      await postTo(a.memberId, chat);
      await deliver(a);
    }
    expect(h.tg.sent).toHaveLength(1);
    const refused = await runs(a.row.id);
    expect(refused.map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
    expect(refused[0]!.error).toMatch(/used by another portal of this app/);

    // Control: B still posts there, and A posts to a chat of its own.
    await deliver(b);
    await postTo(a.memberId, '-100777');
    await deliver(a);
    expect(h.tg.sent.map((m) => m.chat_id)).toEqual(['-100555', '-100555', '-100777']);
  });

  it("never posts into another portal's chat through a chat id with something after its digits", async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    await postTo(b.memberId, '-100555');
    await deliver(b);
    expect(h.tg.sent).toHaveLength(1);
    // The Bot API reads a chat_id's leading digits and drops the rest (tdlib/telegram-bot-api,
    // Client::check_chat): each of these is chat -100555 to it. A template (here the event's
    // name; a deal's title works the same) puts the rest there after the map was checked.
    for (const chat of ['-100555.{{event.name}}', '-100555 {{event.name}}', '{{event.name}}']) {
      await postTo(a.memberId, chat);
      await deliver(a);
    }
    expect(h.tg.sent).toHaveLength(1);
    const refused = await runs(a.row.id);
    expect(refused.map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
    expect(refused[0]!.error).toContain(
      'chatId "-100555.ONCRMDEALUPDATE" is not a chat: expected a number like -1001234567890 or @channel_name',
    );
  });

  it("never posts a portal's step into the operator's chat by its @name", async () => {
    const a = await seedPortal(h.t.deps);
    await postTo(a.memberId, '@ops_alerts');
    await deliver(a);
    expect(h.tg.sent).toHaveLength(0);
    expect((await runs(a.row.id))[0]?.error).toMatch(/server's alert chat/);
  });

  it("never posts into the operator's @name chat by its number while the name cannot be looked up", async () => {
    await h.close();
    h = await startAlertHarness(
      { TELEGRAM_CHAT_ID: '@ops_alerts' },
      { worker: { concurrency: 1 } },
    );
    h.tg.addChat('@ops_alerts', -100);
    const a = await seedPortal(h.t.deps);
    await postTo(a.memberId, '-100');
    // Telegram is busy when the step asks what the operator's @name is.
    h.tg.failNextGetChat({
      code: 429,
      description: 'Too Many Requests: retry after 1',
      retryAfter: 1,
    });
    await deliver(a);
    expect(h.tg.sent).toHaveLength(0);
    const busy = (await runs(a.row.id))[0]?.error ?? '';
    expect(busy).toMatch(/could not be looked up just now/);
    expect(busy).not.toContain('ops_alerts'); // the operator's chat is not told to a tenant
    expect(translateError(busy, 'ru')).toMatch(/^шаг Telegram: чат оповещений сервера/);
    // Retried once the name resolves: refused as the operator's chat, never sent.
    h.t.clock.advance(10 * 60_000);
    await h.services.worker.drain();
    expect(h.tg.sent).toHaveLength(0);
    expect((await runs(a.row.id)).at(-1)?.error).toMatch(/server's alert chat/);
  });

  it("refuses another portal's chat as a portal's alert chat, and never sends an alert there", async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    await postTo(b.memberId, '-100555');
    await deliver(b);
    // A's alert chat names B's chat (saved before B held it): its alert is not sent.
    await putSetting(h.t.deps.db, a.memberId, 'alerts.telegramChatId', '-100555', h.t.clock.now());
    const now = h.t.clock.now().getTime();
    const message = {
      kind: 'backlog',
      key: `backlog:${a.memberId}`,
      phase: 'firing',
      text: 'A is behind',
      subject: 'A',
    };
    const { jobs } = alertJobs(
      message as never,
      await alertDestinations(h.t.deps, a.memberId),
      a.row.id,
      3,
      now,
    );
    await enqueueAlertJobs(h.t.deps.db, jobs, now);
    await h.services.worker.drain();
    expect(h.tg.sent.map((m) => m.chat_id)).toEqual(['-100555']);
    const job = (await h.t.deps
      .db('jobs')
      .where({ type: 'alert', portal_id: a.row.id })
      .first()) as {
      status: string;
      last_error: string;
    };
    expect(job).toMatchObject({
      status: 'dead',
      last_error: expect.stringMatching(/used by another portal/),
    });
  });
  it("never posts into another portal's chat through an @name remembered for a chat it no longer names", async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    // A's own channel was @a_promo when A first posted there: the name is remembered.
    h.tg.addChat('@a_promo', -100777);
    await postTo(a.memberId, '@a_promo');
    await deliver(a);
    // B holds its chat; then A gives the name up and B's chat takes it.
    await postTo(b.memberId, '-100555');
    await deliver(b);
    h.tg.addChat('@a_promo', -100555);
    await postTo(a.memberId, '@a_promo');
    await deliver(a);
    const intoB = h.tg.sent.filter((m) => m.text === `from ${a.memberId}`).map((m) => m.chat_id);
    // A's steps go to the chat the guard admitted (A's own), never by a name that moved to B's.
    expect(intoB.map(String)).toEqual(['-100777', '-100777']);
  });

  /** The code the bot posted last into `chat` (the stand-in's record of sendMessage). */
  const codeIn = (chat: string) => {
    const msg = [...h.tg.sent].reverse().find((m) => String(m.chat_id) === chat);
    return (
      /code (\d{4}) (\d{4})/
        .exec(msg?.text ?? '')
        ?.slice(1)
        .join('') ?? ''
    );
  };

  it('lets a portal that proves a chat is its own take it from the first poster, and share it', async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    const c = await seedPortal(h.t.deps);
    // B learnt the id of A's private group and posted there first: under first-come, B holds it.
    await postTo(b.memberId, '-100666');
    await deliver(b);
    await postTo(a.memberId, '-100666');
    await deliver(a);
    expect((await runs(a.row.id)).map((r) => r.status)).toEqual(['failed']);

    // A asks for a code: the bot posts it into the chat, naming A's portal.
    expect(await sendLinkCode(h.t.deps, a.row, '-100666')).toEqual({
      ok: true,
      chatId: '-100666',
    });
    const code = codeIn('-100666');
    expect(code).toMatch(/^\d{8}$/);
    expect(h.tg.sent.at(-1)!.text).toContain(a.domain);
    // Another code within 10 minutes is refused: a portal cannot flood a chat with codes
    // (the page then offers the field for the code already sent).
    expect(await sendLinkCode(h.t.deps, a.row, '-100666')).toEqual({
      error: expect.stringMatching(/less than 10 minutes ago/),
      pending: '-100666',
    });
    // A wrong code, then B trying A's code for itself: neither links.
    const wrong = code === '00000000' ? '00000001' : '00000000';
    expect(await linkWithCode(h.t.deps, a.row, '-100666', wrong)).toEqual({
      error: 'wrong code; tries left: 4',
    });
    expect(await linkWithCode(h.t.deps, b.row, '-100666', code)).toEqual({
      error: expect.stringMatching(/never sent/),
      ended: true,
    });
    expect(
      await linkWithCode(h.t.deps, a.row, '-100666', `${code.slice(0, 4)} ${code.slice(4)}`),
    ).toEqual({
      ok: true,
      chatId: '-100666',
    });

    // Now only A posts there; B, which held it by posting first, no longer does.
    const before = h.tg.sent.length;
    await deliver(a);
    await deliver(b);
    expect(h.tg.sent.slice(before).map((m) => m.text)).toEqual([`from ${a.memberId}`]);
    const bRuns = await runs(b.row.id);
    expect(bRuns.map((r) => r.status)).toEqual(['succeeded', 'failed']);
    expect(bRuns[1]!.error).toMatch(/used by another portal of this app.*link this one/);

    // Two portals of one company: B proves it reads the chat too, and both post there.
    expect(await sendLinkCode(h.t.deps, b.row, '-100666')).toMatchObject({ ok: true });
    expect(await linkWithCode(h.t.deps, b.row, '-100666', codeIn('-100666'))).toMatchObject({
      ok: true,
    });
    const shared = h.tg.sent.length;
    await deliver(a);
    await deliver(b);
    // Control: a portal that linked nothing is still refused.
    await postTo(c.memberId, '-100666');
    await deliver(c);
    expect(h.tg.sent.slice(shared).map((m) => m.text)).toEqual([
      `from ${a.memberId}`,
      `from ${b.memberId}`,
    ]);
    expect((await runs(c.row.id))[0]!.error).toMatch(/used by another portal/);
  });

  it('never links a public chat, where anyone can read the code', async () => {
    const a = await seedPortal(h.t.deps);
    const sent = h.tg.sent.length;
    for (const chat of ['@b_sales', '-100555']) {
      expect(await sendLinkCode(h.t.deps, a.row, chat)).toEqual({
        error: expect.stringMatching(/^@b_sales is a public chat, where anyone can read a code/),
      });
    }
    expect(h.tg.sent.length).toBe(sent);
  });

  it('gives a chat up when the only portal that linked it unlinks it', async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    expect(await sendLinkCode(h.t.deps, a.row, '-100901')).toMatchObject({ ok: true });
    expect(await linkWithCode(h.t.deps, a.row, '-100901', codeIn('-100901'))).toMatchObject({
      ok: true,
    });
    // Control: while A has it linked, B may not post there.
    await expect(telegramChatGuard(h.t.deps, b.row.id).admit('-100901')).rejects.toThrow(
      /used by another portal/,
    );
    expect(await unlinkTelegramChat(h.t.deps.db, '-100901', a.row.id)).toBe(1);
    // "Unlink gives the chat up": it is nobody's now, and the next portal to post holds it.
    await expect(telegramChatGuard(h.t.deps, b.row.id).admit('-100901')).resolves.toBe('-100901');
    await expect(telegramChatGuard(h.t.deps, a.row.id).admit('-100901')).rejects.toThrow(
      /used by another portal/,
    );
  });

  it('allows five wrong codes in all, also when they are typed back at once', async () => {
    const a = await seedPortal(h.t.deps);
    expect(await sendLinkCode(h.t.deps, a.row, '-100902')).toMatchObject({ ok: true });
    const code = codeIn('-100902');
    const wrong = (i: number) => String((Number(code) + 1 + i) % 100_000_000).padStart(8, '0');
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => linkWithCode(h.t.deps, a.row, '-100902', wrong(i))),
    );
    const judged = answers.filter((r) => 'error' in r && /^wrong code/.test(r.error));
    // Each guess is one of the five tries: twenty sent together are not twenty tries.
    expect(judged.length).toBeLessThanOrEqual(4);
    expect(await linkWithCode(h.t.deps, a.row, '-100902', code)).toEqual({
      error: 'too many wrong codes: ask for a new one',
      ended: true,
    });
  });

  it("tells a Russian admin in Russian why no code went out, keeping Telegram's words as they are", async () => {
    const a = await seedPortal(h.t.deps);
    const unknown = await sendLinkCode(h.t.deps, a.row, '@nobody_knows_this');
    h.tg.failNext({ code: 403, description: 'Forbidden: bot is not a member of the channel chat' });
    const notMember = await sendLinkCode(h.t.deps, a.row, '-100903');
    const ru = [unknown, notMember].map((r) =>
      translateMessage((r as { error: string }).error, 'ru'),
    );
    expect(ru[0]).toContain('не найден');
    expect(ru[0]).not.toContain('not found (');
    expect(ru[0]).toContain('Bad Request: chat not found');
    expect(ru[1]).toContain('Telegram не доставил код в чат -100903');
    // Telegram's own description is its words, not the app's: never half-translated.
    expect(ru[1]).toContain('Forbidden: bot is not a member of the channel chat');
  });

  it('posts one code into a chat for requests sent at once', async () => {
    const a = await seedPortal(h.t.deps);
    const answers = await Promise.all(
      [1, 2, 3].map(() => sendLinkCode(h.t.deps, a.row, '-100904')),
    );
    // "One code per chat every 10 minutes": asking is not a way to post into a stranger's chat.
    expect(h.tg.sent.filter((m) => String(m.chat_id) === '-100904')).toHaveLength(1);
    expect(answers.filter((r) => 'ok' in r)).toHaveLength(1);
    // The one that went is the one that links.
    expect(await linkWithCode(h.t.deps, a.row, '-100904', codeIn('-100904'))).toMatchObject({
      ok: true,
    });
  });

  it('lets a portal ask again at once when Telegram did not take the code', async () => {
    const a = await seedPortal(h.t.deps);
    h.tg.failNext({ code: 403, description: 'Forbidden: bot is not a member of the channel chat' });
    expect(await sendLinkCode(h.t.deps, a.row, '-100905')).toMatchObject({
      error: expect.stringMatching(/did not deliver/),
    });
    expect(await sendLinkCode(h.t.deps, a.row, '-100905')).toMatchObject({ ok: true });
  });

  it('ends a code after five wrong tries or ten minutes, and never links the operator chat', async () => {
    const a = await seedPortal(h.t.deps);
    expect(await sendLinkCode(h.t.deps, a.row, '-100777')).toMatchObject({ ok: true });
    const code = codeIn('-100777');
    const wrong = code === '00000000' ? '00000001' : '00000000';
    for (let i = 0; i < 5; i++) await linkWithCode(h.t.deps, a.row, '-100777', wrong);
    expect(await linkWithCode(h.t.deps, a.row, '-100777', code)).toEqual({
      error: 'too many wrong codes: ask for a new one',
      ended: true,
    });
    h.t.clock.advance(10 * 60_000);
    expect(await sendLinkCode(h.t.deps, a.row, '-100777')).toMatchObject({ ok: true });
    const second = codeIn('-100777');
    h.t.clock.advance(10 * 60_000);
    expect(await linkWithCode(h.t.deps, a.row, '-100777', second)).toEqual({
      error: expect.stringMatching(/expired/),
      ended: true,
    });
    // The operator's chat, by id or by name: no code is sent there.
    const sent = h.tg.sent.length;
    for (const chat of ['-100', '@ops_alerts']) {
      expect(await sendLinkCode(h.t.deps, a.row, chat)).toEqual({
        error: "this is the server's alert chat; use a chat of your own",
      });
    }
    expect(h.tg.sent.length).toBe(sent);
  });

  it('lets only one of two portals posting at once into a chat nobody held get through', async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    const admitted = await Promise.allSettled(
      [a, b].map((p) => telegramChatGuard(h.t.deps, p.row.id).admit('-100888')),
    );
    expect(admitted.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const winner = admitted[0]!.status === 'fulfilled' ? a : b;
    expect(await getTelegramChat(h.t.deps.db, '-100888')).toMatchObject({
      portal_id: winner.row.id,
    });
    // Control: the one admitted is admitted again.
    await expect(telegramChatGuard(h.t.deps, winner.row.id).admit('-100888')).resolves.toBe(
      '-100888',
    );
  });

  it('sends a portal at most five codes in ten minutes, whatever the chats', async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    for (let i = 1; i <= 5; i++) {
      expect(await sendLinkCode(h.t.deps, a.row, `-10040${i}`)).toMatchObject({ ok: true });
    }
    const sent = h.tg.sent.length;
    expect(await sendLinkCode(h.t.deps, a.row, '-100406')).toEqual({
      error: 'too many codes asked for in 10 minutes: try again later',
    });
    expect(h.tg.sent.length).toBe(sent);
    // Another portal is not held up by it, and A may ask again ten minutes later.
    expect(await sendLinkCode(h.t.deps, b.row, '-100406')).toMatchObject({ ok: true });
    h.t.clock.advance(10 * 60_000);
    expect(await sendLinkCode(h.t.deps, a.row, '-100406')).toMatchObject({ ok: true });
  });

  it('does not hold a chat for a portal whose message to it did not go out', async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    // A names a chat the bot is not in: Telegram refuses, and A does not hold it.
    h.tg.failNext({ code: 403, description: 'Forbidden: bot is not a member of the channel chat' });
    await postTo(a.memberId, '-100950');
    await deliver(a);
    expect((await runs(a.row.id)).map((r) => r.status)).toEqual(['failed']);
    expect((await getTelegramChat(h.t.deps.db, '-100950'))?.portal_id ?? null).toBeNull();
    // Its owner adds the bot and posts: the chat is B's.
    await postTo(b.memberId, '-100950');
    await deliver(b);
    expect((await runs(b.row.id)).map((r) => r.status)).toEqual(['succeeded']);
    expect(await getTelegramChat(h.t.deps.db, '-100950')).toMatchObject({ portal_id: b.row.id });
  });
});
