import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { runAction, type ActionContext } from '../../server/actions/index.js';
import type { Env } from '../../server/config.js';
import { silentLogger } from '../../server/lib/logger.js';
import { PausedError, PermanentError, RetryableError } from '../../server/lib/retry-errors.js';
import type { TelegramAction } from '../../server/rules/model.js';
import { startTelegramStandin, type TelegramStandin } from '../helpers/telegram-standin.js';
import { tempDir } from '../helpers/temp-dir.js';
import { testConfig } from '../helpers/test-deps.js';

describe('telegram action', () => {
  let tg: TelegramStandin;
  const tmp = tempDir();
  const ctx = (env: Env = {}): ActionContext => ({
    config: testConfig(tmp.dir, {
      TELEGRAM_API_URL: tg.url,
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_CHAT_ID: '-100200',
      ...env,
    }),
    logger: silentLogger(),
    idempotencyKey: 'evt-1:r:0',
  });
  const send = (action: TelegramAction, env?: Env) => runAction(action, action, ctx(env));

  beforeAll(async () => {
    tg = await startTelegramStandin();
  });
  afterAll(async () => {
    await tg.close();
    tmp.cleanup();
  });

  it('sends the message to the default chat and returns the sent message', async () => {
    const result = await send({ type: 'telegram', text: 'Deal 42 won', parseMode: 'HTML' });
    expect(tg.sent.at(-1)).toEqual({
      chat_id: '-100200',
      text: 'Deal 42 won',
      parse_mode: 'HTML',
      plain: 'Deal 42 won',
    });
    expect(result.response).toMatchObject({ status: 200, body: { text: 'Deal 42 won' } });
    expect(result.request).toMatchObject({
      type: 'telegram',
      to: '-100200',
      url: `${tg.url}/bot***/sendMessage`,
    });
    expect(JSON.stringify(result)).not.toContain(tg.token);
  });

  it('uses the chat the step names over TELEGRAM_CHAT_ID', async () => {
    await send({ type: 'telegram', chatId: 777, text: 'to the sales chat' });
    expect(tg.sent.at(-1)).toMatchObject({ chat_id: 777, text: 'to the sales chat' });
  });

  it("sends a portal's step without a chatId to the portal's own chat, never TELEGRAM_CHAT_ID", async () => {
    const step: TelegramAction = { type: 'telegram', text: 'Deal 42 won' };
    await runAction(step, step, { ...ctx(), telegramChat: '-100777' });
    expect(tg.sent.at(-1)).toMatchObject({ chat_id: '-100777' });
    // A portal without an alert chat of its own: the operator's chat (-100200) is not used.
    const before = tg.sent.length;
    const err = await runAction(step, step, { ...ctx(), telegramChat: null }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain('no alert chat of its own');
    // Nor when the step names it.
    const named: TelegramAction = { ...step, chatId: '-100200' };
    const refused = await runAction(named, named, { ...ctx(), telegramChat: '-100777' }).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(PermanentError);
    expect((refused as Error).message).toContain('TELEGRAM_CHAT_ID');
    expect(tg.sent).toHaveLength(before);
  });

  it('fails for good without a chat, and without a bot token', async () => {
    await expect(send({ type: 'telegram', text: 'x' }, { TELEGRAM_CHAT_ID: '' })).rejects.toThrow(
      /no chatId in the step and TELEGRAM_CHAT_ID is not set/,
    );
    await expect(
      send({ type: 'telegram', text: 'x' }, { TELEGRAM_BOT_TOKEN: '' }),
    ).rejects.toBeInstanceOf(PermanentError);
  });

  it('waits the retry_after the Bot API gives with a 429, without spending an attempt', async () => {
    tg.failNext({ code: 429, description: 'Too Many Requests: retry after 12', retryAfter: 12 });
    const err = await send({ type: 'telegram', text: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PausedError);
    expect((err as PausedError).resumeAfterMs).toBe(12_000);
    expect((err as Error).message).toContain("Telegram's flood control (429)");
  });

  it('fails for good on chat not found and on a wrong token, never showing the token', async () => {
    tg.failNext({ code: 400, description: 'Bad Request: chat not found' });
    const err = await send({ type: 'telegram', text: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain('chat not found');
    const wrong = await send(
      { type: 'telegram', text: 'x' },
      { TELEGRAM_BOT_TOKEN: '999:WRONG' },
    ).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(PermanentError);
    expect((wrong as Error).message).toMatch(/HTTP 401 .*bot\*\*\*\/sendMessage/);
    expect((wrong as Error).message).not.toContain('WRONG');
  });
});
