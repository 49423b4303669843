import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { createSecretBox, safeEqual } from '../../server/lib/crypto.js';

describe('secret box', () => {
  const box = createSecretBox(randomBytes(32));

  it('round-trips a token and never stores it in clear', () => {
    const stored = box.encrypt('access-token-123');
    expect(stored).not.toContain('access-token-123');
    expect(box.decrypt(stored)).toBe('access-token-123');
  });

  it('encrypts the same value differently each time', () => {
    expect(box.encrypt('x')).not.toBe(box.encrypt('x'));
  });

  it('refuses a tampered value', () => {
    const stored = box.encrypt('value');
    const tampered = stored.slice(0, -2) + (stored.endsWith('A') ? 'BB' : 'AA');
    expect(() => box.decrypt(tampered)).toThrow();
  });

  it('refuses a value encrypted with another key', () => {
    expect(() => createSecretBox(randomBytes(32)).decrypt(box.encrypt('v'))).toThrow();
  });

  it('gives a stable keyed digest', () => {
    expect(box.digest('t')).toBe(box.digest('t'));
    expect(box.digest('t')).not.toBe(createSecretBox(randomBytes(32)).digest('t'));
  });
});

describe('safeEqual', () => {
  it('compares strings of equal and unequal length', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', '')).toBe(true);
  });
});
