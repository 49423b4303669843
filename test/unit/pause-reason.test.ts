import { describe, expect, it } from '@jest/globals';
import { bitrixApiError } from '../../server/bitrix/errors.js';
import { pauseReasonOf } from '../../server/bitrix/refresh.js';

// What the OAuth server's refusals of a refresh do to a portal (refresh.ts `pauseReasonOf`):
// the app itself refused pauses it; anything else is the job's own failure.
const refusal = (bitrixCode: string, httpStatus: number) =>
  bitrixApiError({ bitrixCode, httpStatus, method: 'oauth/token', description: '' });

describe('pauseReasonOf', () => {
  it.each([
    ['invalid_client', 400],
    ['wrong_client', 200],
    ['NOT_INSTALLED', 401],
  ])('pauses on %s (HTTP %i): the app refused, not the token', (code, status) => {
    expect(pauseReasonOf(refusal(code, status))).toBe('invalid_client');
  });

  it('pauses on PAYMENT_REQUIRED with its own reason', () => {
    expect(pauseReasonOf(refusal('PAYMENT_REQUIRED', 402))).toBe('payment_required');
  });

  it('does not pause on a passing failure or another error', () => {
    expect(pauseReasonOf(refusal('invalid_client', 503))).toBeUndefined();
    expect(pauseReasonOf(refusal('ERROR_UNEXPECTED_ANSWER', 200))).toBeUndefined();
    expect(pauseReasonOf(new Error('wrong_client'))).toBeUndefined();
  });
});
