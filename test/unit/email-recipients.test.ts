import { describe, expect, it } from '@jest/globals';
import { recipientCount } from '../../server/actions/email.js';

/** What an e-mail step counts against PORTAL_MESSAGES_PER_DAY: each address it names. */
describe('recipientCount', () => {
  it('counts each address, in a list or in one comma-separated text', () => {
    expect(recipientCount('a@example.com')).toBe(1);
    expect(recipientCount('a@example.com, Bo <b@example.com>, c@example.com')).toBe(3);
    expect(recipientCount(['a@example.com', 'b@example.com, c@example.com'])).toBe(3);
  });
});
