import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { up } from '../../db/migrations/0040-canonical-telegram-chats.js';
import { getSetting, putSetting } from '../../db/stores/settings.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * Chats linked or saved before numbers were made canonical kept their leading zeros
 * (`-0100555`): the step guard compares Telegram's own ids and did not see that portal's
 * hold, and unlinking by the number did nothing. Migration 0040 rewrites them.
 */
describe('migration 0040: Telegram chats in one spelling', () => {
  let t: TestDeps;
  beforeAll(async () => {
    t = await createTestDeps();
  });
  afterAll(async () => {
    await t.close();
  });

  it('rewrites leading zeros, keeps a canonical row that is there, and leaves names alone', async () => {
    const { db } = t.deps;
    const at = t.clock.now().getTime();
    await db('telegram_chats').insert([
      { chat_id: '-0100555', username: null, portal_id: 1, updated_at: at },
      { chat_id: '-0100777', username: null, portal_id: 2, updated_at: at },
      { chat_id: '-100777', username: null, portal_id: 3, updated_at: at },
      { chat_id: '-100888', username: 'sales', portal_id: 4, updated_at: at },
    ]);
    await db('telegram_chat_links').insert([
      { chat_id: '-0100555', portal_id: 1, linked_at: at },
      { chat_id: '-00100777', portal_id: 3, linked_at: at },
      { chat_id: '-100777', portal_id: 3, linked_at: at },
    ]);
    await db('telegram_link_codes').insert([
      {
        portal_id: 1,
        chat_id: '-0100555',
        code_digest: 'x',
        tries: 0,
        sent_at: at,
        expires_at: at,
      },
      { portal_id: 1, chat_id: '-100556', code_digest: 'y', tries: 0, sent_at: at, expires_at: at },
    ]);
    await putSetting(db, 'm1', 'alerts.telegramChatId', '-0100555', t.clock.now());
    await putSetting(db, 'm2', 'alerts.telegramChatId', '@sales_team', t.clock.now());

    await up(db);

    const chats = await db('telegram_chats').orderBy('chat_id').select('chat_id', 'portal_id');
    expect(chats.map((c) => [c.chat_id, Number(c.portal_id)])).toEqual([
      ['-100555', 1],
      ['-100777', 3],
      ['-100888', 4],
    ]);
    const links = await db('telegram_chat_links').orderBy('chat_id').select('chat_id', 'portal_id');
    expect(links.map((l) => [l.chat_id, Number(l.portal_id)])).toEqual([
      ['-100555', 1],
      ['-100777', 3],
    ]);
    const codes = await db('telegram_link_codes').select('chat_id');
    expect(codes.map((c) => c.chat_id)).toEqual(['-100556']);
    expect(await getSetting(db, 'm1', 'alerts.telegramChatId')).toBe('-100555');
    expect(await getSetting(db, 'm2', 'alerts.telegramChatId')).toBe('@sales_team');
  });
});
