import { createHmac, timingSafeEqual } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { runAction, stepOutput, type ActionContext } from '../../server/actions/index.js';
import { silentLogger } from '../../server/lib/logger.js';
import { PermanentError, RetryableError } from '../../server/lib/retry-errors.js';
import { buildTemplateContext } from '../../server/rules/context.js';
import type { Action, HttpAction } from '../../server/rules/model.js';
import { renderAction } from '../../server/rules/render-action.js';
import { startHttpSink, type HttpSink, type SunkRequest } from '../helpers/http-sink.js';
import { createManualClock } from '../helpers/manual-clock.js';
import { tempDir } from '../helpers/temp-dir.js';
import { testConfig } from '../helpers/test-deps.js';

/**
 * Verifies a Standard Webhooks signature the way a receiver would, written from the spec
 * (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md)
 * rather than with our signer.
 */
function verifyStandardWebhook(secret: string, req: SunkRequest, nowSeconds: number): boolean {
  const id = String(req.headers['webhook-id']);
  const ts = String(req.headers['webhook-timestamp']);
  if (Math.abs(nowSeconds - Number(ts)) > 300) return false;
  const key = secret.startsWith('whsec_')
    ? Buffer.from(secret.slice(6), 'base64')
    : Buffer.from(secret);
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${req.body}`).digest();
  return String(req.headers['webhook-signature'])
    .split(' ')
    .some((part) => {
      const [version, sig] = part.split(',');
      const got = Buffer.from(sig ?? '', 'base64');
      return version === 'v1' && got.length === expected.length && timingSafeEqual(got, expected);
    });
}

describe('http action', () => {
  let sink: HttpSink;
  const tmp = tempDir();
  const clock = createManualClock(Date.UTC(2026, 10, 27, 10, 0, 0));
  const ctx = (key = 'evt-1:rule:0'): ActionContext => ({
    config: testConfig(tmp.dir),
    logger: silentLogger(),
    idempotencyKey: key,
    clock,
  });
  const post = (extra: Partial<HttpAction> = {}): HttpAction => ({
    type: 'http',
    method: 'POST',
    url: `${sink.url}/api/invoices`,
    body: { dealId: '42' },
    ...extra,
  });

  beforeAll(async () => {
    sink = await startHttpSink();
  });
  afterEach(() => {
    sink.requests.length = 0;
    sink.handle(() => ({ body: { ok: true } }));
  });
  afterAll(async () => {
    await sink.close();
    tmp.cleanup();
  });

  it('sends the JSON body with an Idempotency-Key and returns the parsed response', async () => {
    sink.handle(() => ({ status: 201, body: { id: 'INV-77' } }));
    const action = post({ headers: { 'X-Source': 'b24hooks' } });
    const result = await runAction(action, action, ctx());
    const [req] = sink.requests;
    expect(req?.method).toBe('POST');
    expect(req?.url).toBe('/api/invoices');
    expect(req?.headers['idempotency-key']).toBe('evt-1:rule:0');
    expect(req?.headers['content-type']).toBe('application/json');
    expect(req?.headers['x-source']).toBe('b24hooks');
    expect(JSON.parse(req?.body ?? '')).toEqual({ dealId: '42' });
    expect(req?.headers['webhook-signature']).toBeUndefined();
    expect(result).toMatchObject({
      status: 'succeeded',
      request: { type: 'http', method: 'POST', url: `${sink.url}/api/invoices` },
      response: { status: 201, body: { id: 'INV-77' } },
    });
    expect(stepOutput(result)).toEqual({ response: { id: 'INV-77' }, status: 201 });
  });

  it('signs the request in the Standard Webhooks format that a receiver can verify', async () => {
    const secret = `whsec_${Buffer.from('a very secret signing key!').toString('base64')}`;
    const action = post({ secret });
    const result = await runAction(action, action, ctx('evt-9:paid:0'));
    const [req] = sink.requests;
    expect(req?.headers['webhook-id']).toBe('evt-9:paid:0');
    expect(req?.headers['webhook-timestamp']).toBe(String(clock.now().getTime() / 1000));
    expect(req?.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(verifyStandardWebhook(secret, req!, clock.now().getTime() / 1000)).toBe(true);
    expect(
      verifyStandardWebhook(
        secret,
        { ...req!, body: req!.body + ' ' },
        clock.now().getTime() / 1000,
      ),
    ).toBe(false);
    expect(JSON.stringify(result)).not.toContain(secret.slice(6));
  });

  it('signs with a plain (non-whsec) secret as its UTF-8 bytes', async () => {
    const action = post({ secret: 'plain-shared-secret' });
    await runAction(action, action, ctx());
    expect(
      verifyStandardWebhook('plain-shared-secret', sink.requests[0]!, clock.now().getTime() / 1000),
    ).toBe(true);
  });

  it('passes one step output to the next through templates', async () => {
    sink.handle((req) =>
      req.url === '/api/invoices' ? { status: 201, body: { id: 'INV-5' } } : { body: {} },
    );
    const steps: Action[] = [
      {
        type: 'http',
        name: 'invoice',
        method: 'POST',
        url: `${sink.url}/api/invoices`,
        body: { amount: '{{deal.OPPORTUNITY}}' },
      },
      {
        type: 'http',
        name: 'ship',
        method: 'PUT',
        url: `${sink.url}/api/shipments/{{deal.ID}}`,
        body: { invoice: '{{steps.invoice.response.id}}' },
      },
    ];
    const outputs: Record<string, ReturnType<typeof stepOutput>> = {};
    for (const step of steps) {
      const tctx = buildTemplateContext({
        event: { name: 'ONCRMDEALUPDATE', entityType: 'deal' },
        entity: { ID: '42', OPPORTUNITY: 950.5 },
        steps: outputs,
      });
      const result = await runAction(step, renderAction(step, tctx), ctx());
      if (step.name) outputs[step.name] = stepOutput(result);
    }
    expect(JSON.parse(sink.requests[0]!.body)).toEqual({ amount: 950.5 });
    expect(sink.requests[1]!.method).toBe('PUT');
    expect(sink.requests[1]!.url).toBe('/api/shipments/42');
    expect(JSON.parse(sink.requests[1]!.body)).toEqual({ invoice: 'INV-5' });
  });

  it('treats a 5xx answer as retryable', async () => {
    sink.handle(() => ({ status: 503, body: 'maintenance' }));
    const action = post();
    const err = await runAction(action, action, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as Error).message).toBe(`HTTP 503 from POST ${sink.url}/api/invoices: maintenance`);
  });

  it('honours Retry-After on a 429 and retries a 408', async () => {
    sink.handle(() => ({
      status: 429,
      headers: { 'retry-after': '7' },
      body: { error: 'slow down' },
    }));
    const action = post();
    const err = await runAction(action, action, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as RetryableError).retryAfterMs).toBe(7000);
    sink.handle(() => ({
      status: 429,
      headers: { 'retry-after': new Date(clock.now().getTime() + 30_000).toUTCString() },
    }));
    expect(
      ((await runAction(action, action, ctx()).catch((e: unknown) => e)) as RetryableError)
        .retryAfterMs,
    ).toBe(30_000);
    sink.handle(() => ({ status: 408 }));
    expect(await runAction(action, action, ctx()).catch((e: unknown) => e)).toBeInstanceOf(
      RetryableError,
    );
  });

  it('gives later steps the answer as it came, echoed header values included', async () => {
    // A header filled from a record ("X-Deal-Id: 4821") is no secret of the operator's: an
    // answer naming it ("INV-4821") reaches the next step whole. (Credentials lent by the
    // default map are masked in the output: test/integration/rules-secrets.test.ts.)
    sink.handle(() => ({ body: { deal: '48210001', invoice: 'INV-48210001' } }));
    const action = post({ headers: { 'X-Deal-Id': '48210001' } });
    const result = await runAction(action, action, ctx());
    expect(stepOutput(result).response).toEqual({ deal: '48210001', invoice: 'INV-48210001' });
  });

  it('treats a 400 answer as permanent, naming the status and the reply', async () => {
    sink.handle(() => ({ status: 400, body: { error: 'amount is required' } }));
    const action = post();
    const err = await runAction(action, action, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain('HTTP 400 from POST');
    expect((err as Error).message).toContain('amount is required');
  });

  it('gives up on a slow receiver after timeoutMs with a retryable error', async () => {
    sink.handle(() => ({ delayMs: 5000, body: { late: true } }));
    const action = post({ timeoutMs: 150 });
    const err = await runAction(action, action, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as Error).message).toMatch(/timed out after 150 ms/);
  });

  it('treats a refused connection as retryable', async () => {
    const closed = await startHttpSink();
    const url = closed.url;
    await closed.close();
    const action = post({ url: `${url}/x` });
    const err = await runAction(action, action, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('names a port fetch never connects to, and does not retry it', async () => {
    // 6000 (X11) is one of fetch's bad ports: the request fails before any connection, so no
    // listener is needed, and the cause's only word is "bad port".
    const action = post({ url: 'http://127.0.0.1:6000/orders' });
    const err = await runAction(action, action, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain('its port is reserved for another protocol');
    expect((err as Error).message).toContain('use the port the service answers HTTP on');
  });

  it('keeps credentials in the URL out of the summary', async () => {
    const action = post({ url: `${sink.url.replace('//', '//user:pw@')}/hook?api_key=k3y&x=1` });
    const result = await runAction(action, action, ctx());
    expect(result.request.url).toBe(`${sink.url}/hook?api_key=***&x=1`);
    expect(sink.requests[0]?.url).toBe('/hook?api_key=k3y&x=1');
    expect(sink.requests[0]?.headers.authorization).toBe(
      `Basic ${Buffer.from('user:pw').toString('base64')}`,
    );
    expect(result.request.headers).toContain('authorization');
    expect(JSON.stringify(result)).not.toMatch(/k3y|user:pw|dXNlcjpwdw/);
  });

  it('sends GET without a body', async () => {
    const action: HttpAction = {
      type: 'http',
      method: 'GET',
      url: `${sink.url}/ping`,
      body: { ignored: true },
    };
    await runAction(action, action, ctx());
    expect(sink.requests[0]).toMatchObject({ method: 'GET', body: '' });
  });
});
