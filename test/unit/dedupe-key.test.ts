import { describe, expect, it } from '@jest/globals';
import { dedupeKey } from '../../server/intake/intake.js';
import type { Delivery } from '../../server/intake/event-body.js';

/** The intake's dedupe key: identity of a delivery, and index locality of new keys. */
const delivery = (over: Partial<Delivery> = {}, id = '42'): [Delivery, string, string] => {
  const d: Delivery = {
    event: 'ONCRMDEALUPDATE',
    eventHandlerId: '58',
    data: { FIELDS: { ID: id } },
    ts: 1764237600,
    auth: { member_id: 'member-1', application_token: 'secret-app-token' },
    ...over,
  };
  return [d, JSON.stringify(d.data), id];
};
const key = (...a: [Delivery, string, string]) => dedupeKey(...a);

describe('dedupeKey', () => {
  it('is the same for identical deliveries, tokens aside', () => {
    const [a, aJson, aId] = delivery();
    const [b, bJson, bId] = delivery({
      auth: { member_id: 'member-1', application_token: 'another-token', access_token: 'x' },
    });
    expect(key(a, aJson, aId)).toBe(key(b, bJson, bId));
  });

  it('differs when the portal, event, ts or data differ', () => {
    const base = key(...delivery());
    expect(key(...delivery({ auth: { member_id: 'member-2' } }))).not.toBe(base);
    expect(key(...delivery({ event: 'ONCRMDEALADD' }))).not.toBe(base);
    expect(key(...delivery({ ts: 1764237601 }))).not.toBe(base);
    expect(key(...delivery({ ts: undefined }))).not.toBe(base);
    expect(key(...delivery({ data: { FIELDS: { ID: '42', X: 1 } } }))).not.toBe(base);
    expect(key(...delivery({}, '43'))).not.toBe(base);
  });

  it('fits the 64-character column for any ts and entity id, keeping at least 200 hash bits', () => {
    for (const [ts, id] of [
      [undefined, ''],
      [0, '1'],
      [999_999_999_999, 'x'.repeat(32)],
      [1764237600, '123456789012345678901234567890'],
    ] as const) {
      const k = key(...delivery({ ts }, id));
      expect(k.length).toBeLessThanOrEqual(64);
      const hashPart = k.slice(k.lastIndexOf('.') + 1);
      expect(hashPart.length * 6).toBeGreaterThanOrEqual(200);
      expect(hashPart).toMatch(/^[A-Za-z0-9_-]+$/);
    }
  });

  it('orders new keys by event time, then entity, so a batch lands on the newest index pages', () => {
    const keys = [
      key(...delivery({ ts: 1764237600 }, '1000')),
      key(...delivery({ ts: 1764237600 }, '1001')),
      key(...delivery({ ts: 1764237601 }, '0999')),
      key(...delivery({ ts: 1864237601 }, '0001')),
    ];
    expect([...keys].sort()).toEqual(keys);
  });
});
