import type http from 'node:http';
import { describe, expect, it } from '@jest/globals';
import { parseEventBody } from '../../server/intake/event-body.js';
import { entityOf } from '../../server/intake/entity.js';
import { clientAddress } from '../../server/intake/ip-allowlist.js';

/**
 * What a stranger writes into a delivery reaches columns of fixed size and kind: a value the
 * database would refuse (PostgreSQL: NUL, a text longer than its column) must be refused or
 * left out before it is written beside genuine deliveries (commit-queue.ts).
 */
describe('delivery values bound for columns', () => {
  const body = (handlerId: string) =>
    `event=ONCRMDEALUPDATE&event_handler_id=${handlerId}&data%5BFIELDS%5D%5BID%5D=1&ts=1764237600` +
    '&auth%5Bmember_id%5D=m1&auth%5Bapplication_token%5D=t';

  it('refuses an event_handler_id with control characters, and keeps a numeric one', () => {
    expect(parseEventBody(body('58')).eventHandlerId).toBe('58');
    expect(() => parseEventBody(body('%00'))).toThrow('invalid event_handler_id');
    expect(() => parseEventBody(body('5%0A8'))).toThrow('invalid event_handler_id');
  });

  it('takes a smart process type id only as an integer of at most 10 digits', () => {
    const of = (typeId: string) =>
      entityOf('ONCRMDYNAMICITEMADD', { FIELDS: { ID: '7', ENTITY_TYPE_ID: typeId } }).type;
    expect(of('1038')).toBe('dynamic:1038');
    expect(of('9'.repeat(32))).toBe('dynamic');
    expect(of('abc')).toBe('dynamic');
    expect(entityOf('ONCRMDYNAMICITEMUPDATE_128', { FIELDS: { ID: '7' } }).type).toBe(
      'dynamic:128',
    );
  });

  it('reads X-Forwarded-For (TRUST_PROXY=true) only when it names an address', () => {
    const req = (xff: string) =>
      ({
        socket: { remoteAddress: '10.0.0.5' },
        headers: { 'x-forwarded-for': xff },
      }) as unknown as http.IncomingMessage;
    expect(clientAddress(req('203.0.113.7, 10.0.0.1'), true)).toBe('203.0.113.7');
    expect(clientAddress(req('2001:db8::1'), true)).toBe('2001:db8::1');
    expect(clientAddress(req('x'.repeat(100)), true)).toBe('10.0.0.5');
  });
});
