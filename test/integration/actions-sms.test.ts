import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { runAction, type ActionContext } from '../../server/actions/index.js';
import type { Env } from '../../server/config.js';
import { silentLogger } from '../../server/lib/logger.js';
import { PermanentError, RetryableError } from '../../server/lib/retry-errors.js';
import type { SmsAction } from '../../server/rules/model.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { tempDir } from '../helpers/temp-dir.js';
import { testConfig } from '../helpers/test-deps.js';

describe('sms action', () => {
  let gw: HttpSink;
  const tmp = tempDir();
  const ctx = (env: Env): ActionContext => ({
    config: testConfig(tmp.dir, env),
    logger: silentLogger(),
    idempotencyKey: 'evt-3:paid:2',
  });
  const sms: SmsAction = {
    type: 'sms',
    to: '+1 (555) 010-0',
    text: 'Payment received for order 42',
  };
  const send = (env: Env, action: SmsAction = sms) => runAction(action, action, ctx(env));

  beforeAll(async () => {
    gw = await startHttpSink();
  });
  afterEach(() => {
    gw.requests.length = 0;
    gw.handle(() => ({ body: { ok: true } }));
  });
  afterAll(async () => {
    await gw.close();
    tmp.cleanup();
  });

  describe('generic gateway', () => {
    const env = () => ({
      SMS_PROVIDER: 'generic',
      SMS_URL: `${gw.url}/send`,
      SMS_TOKEN: 'gw-token-123',
      SMS_FROM: 'SHOP',
    });

    it('posts {to, text, from} as JSON with the bearer token and an Idempotency-Key', async () => {
      gw.handle(() => ({ body: { id: 'msg-1' } }));
      const result = await send(env());
      const [req] = gw.requests;
      expect(req?.url).toBe('/send');
      expect(req?.headers.authorization).toBe('Bearer gw-token-123');
      expect(req?.headers['idempotency-key']).toBe('evt-3:paid:2');
      expect(JSON.parse(req?.body ?? '')).toEqual({
        to: '+15550100',
        text: 'Payment received for order 42',
        from: 'SHOP',
      });
      expect(result.response.body).toEqual({ id: 'msg-1' });
      expect(JSON.stringify(result)).not.toContain('gw-token-123');
    });

    it('retries a 5xx from the gateway and refuses a value that is no phone number', async () => {
      gw.handle(() => ({ status: 502 }));
      expect(await send(env()).catch((e: unknown) => e)).toBeInstanceOf(RetryableError);
      const err = await send(env(), { ...sms, to: 'call me' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toBe('sms step: "call me" is not a phone number');
    });

    it("keeps the operator's token out of the error when the gateway quotes it", async () => {
      // The error is shown to every user of every portal whose rule sends an SMS (event page,
      // log, deal tab, CSV export); before, a gateway's "token … is not valid" showed SMS_TOKEN.
      gw.handle((req) => ({
        status: 401,
        body: `token ${String(req.headers.authorization).replace(/^Bearer /, '')} is not valid`,
      }));
      const err = await send(env()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toContain('HTTP 401');
      expect((err as Error).message).toContain('is not valid');
      expect((err as Error).message).not.toContain('gw-token-123');
    });

    it('fails for good when the provider is not configured', async () => {
      await expect(send({})).rejects.toThrow('SMS_PROVIDER is not set');
      await expect(send({ SMS_PROVIDER: 'generic' })).rejects.toThrow('needs SMS_URL');
    });
  });

  describe('twilio', () => {
    const env = () => ({
      SMS_PROVIDER: 'twilio',
      SMS_URL: gw.url,
      SMS_LOGIN: 'AC0123456789abcdef',
      SMS_TOKEN: 'twilio-auth-token',
      SMS_FROM: '+15550999',
    });

    it('posts the Messages.json form with Basic auth', async () => {
      gw.handle(() => ({ status: 201, body: { sid: 'SM123', status: 'queued' } }));
      const result = await send(env());
      const [req] = gw.requests;
      expect(req?.url).toBe('/2010-04-01/Accounts/AC0123456789abcdef/Messages.json');
      expect(req?.headers['content-type']).toBe('application/x-www-form-urlencoded');
      expect(req?.headers.authorization).toBe(
        `Basic ${Buffer.from('AC0123456789abcdef:twilio-auth-token').toString('base64')}`,
      );
      expect(Object.fromEntries(new URLSearchParams(req?.body))).toEqual({
        To: '+15550100',
        From: '+15550999',
        Body: 'Payment received for order 42',
      });
      expect(result.response.body).toMatchObject({ sid: 'SM123' });
      expect(JSON.stringify(result)).not.toContain('twilio-auth-token');
    });

    it("keeps the operator's account out of the output later steps read", async () => {
      // Twilio's answer names the account twice (account_sid, uri); the output is what
      // {{steps.<name>.response}} gives every portal's later steps.
      gw.handle(() => ({
        status: 201,
        body: {
          sid: 'SM124',
          account_sid: 'AC0123456789abcdef',
          uri: '/2010-04-01/Accounts/AC0123456789abcdef/Messages/SM124.json',
          status: 'queued',
        },
      }));
      const result = await send(env());
      expect(result.response.body).toEqual({
        sid: 'SM124',
        account_sid: '********',
        uri: '/2010-04-01/Accounts/********/Messages/SM124.json',
        status: 'queued',
      });
      expect(JSON.stringify(result)).not.toContain('AC0123456789abcdef');
    });

    it('fails for good on a Twilio 400 and retries a 429', async () => {
      gw.handle(() => ({
        status: 400,
        body: { code: 21211, message: "The 'To' number is not valid." },
      }));
      const err = await send(env()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toContain('21211');
      gw.handle(() => ({ status: 429, headers: { 'retry-after': '3' } }));
      expect(((await send(env()).catch((e: unknown) => e)) as RetryableError).retryAfterMs).toBe(
        3000,
      );
    });
  });

  describe('sms.ru', () => {
    const env = () => ({ SMS_PROVIDER: 'smsru', SMS_URL: gw.url, SMS_TOKEN: 'smsru-api-id' });

    it('posts api_id, to, msg and json=1 to /sms/send', async () => {
      gw.handle(() => ({
        body: {
          status: 'OK',
          status_code: 100,
          sms: { '15550100': { status: 'OK', status_code: 100, sms_id: '000000-10000000' } },
          balance: 4122.56,
        },
      }));
      const result = await send(env());
      const [req] = gw.requests;
      expect(req?.url).toBe('/sms/send');
      expect(Object.fromEntries(new URLSearchParams(req?.body))).toEqual({
        api_id: 'smsru-api-id',
        to: '15550100',
        msg: 'Payment received for order 42',
        json: '1',
      });
      expect(JSON.stringify(result)).not.toContain('smsru-api-id');
      // The operator's account balance is not shown to the portal's users; the rest is.
      expect(result.response.body).toEqual({
        status: 'OK',
        status_code: 100,
        sms: { '15550100': { status: 'OK', status_code: 100, sms_id: '000000-10000000' } },
      });
    });

    it('reads the error status sms.ru sends with HTTP 200', async () => {
      gw.handle(() => ({
        body: {
          status: 'OK',
          status_code: 100,
          sms: {
            '15550100': {
              status: 'ERROR',
              status_code: 207,
              status_text: 'Cannot send to this number',
            },
          },
        },
      }));
      const err = await send(env()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toContain('207 Cannot send to this number');
      gw.handle(() => ({
        body: { status: 'ERROR', status_code: 220, status_text: 'Service unavailable' },
      }));
      expect(await send(env()).catch((e: unknown) => e)).toBeInstanceOf(RetryableError);
    });
  });
});
