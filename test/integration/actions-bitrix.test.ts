import { afterAll, describe, expect, it } from '@jest/globals';
import { runAction, type ActionContext, type BitrixCall } from '../../server/actions/index.js';
import { silentLogger } from '../../server/lib/logger.js';
import { PausedError, PermanentError, RetryableError } from '../../server/lib/retry-errors.js';
import { buildTemplateContext } from '../../server/rules/context.js';
import type { BitrixAction } from '../../server/rules/model.js';
import { renderAction } from '../../server/rules/render-action.js';
import { tempDir } from '../helpers/temp-dir.js';
import { testConfig } from '../helpers/test-deps.js';

describe('bitrix action', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());
  const ctx = (bitrix?: BitrixCall): ActionContext => ({
    config: testConfig(tmp.dir),
    logger: silentLogger(),
    idempotencyKey: 'evt-1:r:3',
    bitrix,
  });
  const comment: BitrixAction = {
    type: 'bitrix',
    name: 'comment',
    method: 'crm.timeline.comment.add',
    params: {
      fields: {
        ENTITY_ID: '{{deal.ID}}',
        ENTITY_TYPE: 'deal',
        COMMENT: 'Invoice {{steps.invoice.response.id}} created',
      },
    },
  };

  it('calls the REST method with the rendered params and returns its result', async () => {
    const calls: Array<[string, object]> = [];
    const tctx = buildTemplateContext({
      event: { name: 'ONCRMDEALUPDATE', entityType: 'deal' },
      entity: { ID: '42' },
      steps: { invoice: { response: { id: 'INV-9' }, status: 201 } },
    });
    const result = await runAction(
      comment,
      renderAction(comment, tctx),
      ctx(async (method, params) => {
        calls.push([method, params]);
        return 1001;
      }),
    );
    expect(calls).toEqual([
      [
        'crm.timeline.comment.add',
        { fields: { ENTITY_ID: '42', ENTITY_TYPE: 'deal', COMMENT: 'Invoice INV-9 created' } },
      ],
    ]);
    expect(result).toMatchObject({
      status: 'succeeded',
      request: { method: 'crm.timeline.comment.add' },
      response: { body: 1001 },
    });
  });

  it('passes the REST client’s own retry decisions through and maps a retryable flag', async () => {
    const paused = new PausedError('portal needs re-authorisation', 60_000);
    await expect(
      runAction(
        comment,
        comment,
        ctx(() => Promise.reject(paused)),
      ),
    ).rejects.toBe(paused);
    const limited = Object.assign(new Error('QUERY_LIMIT_EXCEEDED'), { retryable: true });
    expect(
      await runAction(
        comment,
        comment,
        ctx(() => Promise.reject(limited)),
      ).catch((e: unknown) => e),
    ).toBeInstanceOf(RetryableError);
    const denied = Object.assign(new Error('ACCESS_DENIED'), { retryable: false });
    const err = await runAction(
      comment,
      comment,
      ctx(() => Promise.reject(denied)),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toBe('bitrix crm.timeline.comment.add failed: ACCESS_DENIED');
  });

  it('fails for good without a REST client', async () => {
    await expect(runAction(comment, comment, ctx())).rejects.toBeInstanceOf(PermanentError);
  });
});
