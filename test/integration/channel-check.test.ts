import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from '@jest/globals';
import { createChannelCheck } from '../../server/actions/channel-check.js';
import { createMailer } from '../../server/actions/mailer.js';
import type { Config } from '../../server/config.js';
import { startHttpSink, type HttpSink, type SunkRequest } from '../helpers/http-sink.js';
import { startSmtpSink } from '../helpers/smtp-sink.js';
import { startTelegramStandin } from '../helpers/telegram-standin.js';

/**
 * The shared channels' breaker asks each channel itself before the portals' failures open it
 * for everyone (server/queue/destinations.ts). The check must send nothing, and tell "answers"
 * (any reply but a 5xx) from "does not" (5xx, no connection, no answer in time).
 */
type Channels = Pick<Config, 'telegram' | 'email' | 'sms'>;
const channels = (over: Partial<{ [K in keyof Channels]: Partial<Channels[K]> }>): Channels => ({
  telegram: { botToken: undefined, chatId: undefined, apiUrl: '', ...over.telegram },
  email: { smtpUrl: undefined, to: undefined, from: 'b24hooks@localhost', ...over.email },
  sms: {
    provider: undefined,
    url: undefined,
    token: undefined,
    login: undefined,
    from: undefined,
    ...over.sms,
  },
});

/** A TCP port that accepts and never says a word (an SMTP server hung before its greeting). */
async function silentPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('the shared channels check', () => {
  const closing: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of closing) await c();
  });
  const sink = async (answer: (req: SunkRequest) => { status: number; body?: unknown }) => {
    const s: HttpSink = await startHttpSink(answer);
    closing.push(() => s.close());
    return s;
  };

  it("asks Telegram's getMe, and reads 5xx or no connection as down", async () => {
    const tg = await startTelegramStandin();
    closing.push(() => tg.close());
    const up = createChannelCheck({
      config: channels({ telegram: { botToken: tg.token, apiUrl: tg.url } }),
    });
    expect(await up('telegram:x')).toBe(true);
    expect(tg.sink.requests.map((r) => r.url)).toEqual([`/bot${tg.token}/getMe`]);
    expect(tg.sent).toEqual([]);
    const broken = await sink(() => ({ status: 502 }));
    const down = createChannelCheck({
      config: channels({ telegram: { botToken: 't', apiUrl: broken.url } }),
    });
    expect(await down('telegram:x')).toBe(false);
    const gone = createChannelCheck({
      config: channels({
        telegram: { botToken: 't', apiUrl: `http://127.0.0.1:${await closedPort()}` },
      }),
    });
    expect(await gone('telegram:x')).toBe(false);
  });

  it("asks sms.ru's auth/check (220: down), Twilio's account and a generic gateway's URL", async () => {
    let code = 100;
    const smsru = await sink(() => ({ status: 200, body: { status: 'OK', status_code: code } }));
    const ru = createChannelCheck({
      config: channels({ sms: { provider: 'smsru', url: smsru.url, token: 'api-id' } }),
    });
    expect(await ru('sms:x')).toBe(true);
    code = 220;
    expect(await ru('sms:x')).toBe(false);
    expect(smsru.requests.map((r) => [r.method, r.url, r.body])).toEqual([
      ['POST', '/auth/check', 'api_id=api-id&json=1'],
      ['POST', '/auth/check', 'api_id=api-id&json=1'],
    ]);

    let status = 401;
    const twilio = await sink(() => ({ status }));
    const tw = createChannelCheck({
      config: channels({ sms: { provider: 'twilio', url: twilio.url, login: 'AC1', token: 'k' } }),
    });
    expect(await tw('sms:x')).toBe(true);
    status = 503;
    expect(await tw('sms:x')).toBe(false);
    expect(twilio.requests[0]).toMatchObject({
      method: 'GET',
      url: '/2010-04-01/Accounts/AC1.json',
    });

    const generic = await sink((req) => ({ status: req.method === 'GET' ? 405 : 500 }));
    const gen = createChannelCheck({
      config: channels({ sms: { provider: 'generic', url: `${generic.url}/send` } }),
    });
    expect(await gen('sms:x')).toBe(true);
    expect(generic.requests.map((r) => [r.method, r.url, r.body])).toEqual([['GET', '/send', '']]);
  });

  it('logs in to the SMTP server without sending, and reads a refusal or silence as down', async () => {
    const smtp = await startSmtpSink();
    closing.push(() => smtp.close());
    const mailer = createMailer();
    closing.push(async () => mailer.close());
    const check = createChannelCheck({
      config: channels({ email: { smtpUrl: smtp.url } }),
      mailer,
    });
    expect(await check('smtp:x')).toBe(true);
    expect(smtp.connections()).toBe(1);
    expect(smtp.messages).toEqual([]);
    smtp.refuseRecipient('*', 421, 'Service not available');
    expect(await check('smtp:x')).toBe(false);

    const hung = await silentPort();
    closing.push(hung.close);
    const started = Date.now();
    const silent = createChannelCheck({
      config: channels({ email: { smtpUrl: `smtp://u:p@127.0.0.1:${hung.port}` } }),
      mailer,
      timeoutMs: 300,
    });
    expect(await silent('smtp:x')).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);

    // The rule builder's test sends have no mailer: the check makes its own transport. It
    // said "answers" without asking, so a test send could keep a down SMTP server closed.
    const noMailer = (url: string) =>
      createChannelCheck({ config: channels({ email: { smtpUrl: url } }) });
    expect(await noMailer(`smtp://u:p@127.0.0.1:${await closedPort()}`)('smtp:x')).toBe(false);
    smtp.refuseRecipient('*', 250, 'back');
    const before = smtp.connections();
    expect(await noMailer(smtp.url)('smtp:x')).toBe(true);
    expect(smtp.connections()).toBe(before + 1);
  });
});
