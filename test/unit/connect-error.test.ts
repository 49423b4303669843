import { describe, expect, it } from '@jest/globals';
import { describeConnectError } from '../../db/connect-error.js';

const pg = { client: 'pg' as const, connectionString: 'postgres://b24hooks@db:5432/b24hooks' };

describe('the one line a PostgreSQL connection error gives', () => {
  // node-postgres's own words (pg 8, SCRAM) when the server asks for a password and neither
  // DATABASE_URL nor PGPASSWORD has one: an operator read it as a bug of the app.
  it('says a password is asked for and where it goes', () => {
    const e = new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string');
    expect(describeConnectError(e, pg)).toBe(
      'PostgreSQL at b24hooks@db:5432/b24hooks (DATABASE_URL) asks for a password, and none is set: put it in DATABASE_URL (percent-encoded) or in PGPASSWORD',
    );
  });

  it('names PGPASSWORD beside DATABASE_URL for a refused password', () => {
    const e = Object.assign(new Error('password authentication failed for user "b24hooks"'), {
      code: '28P01',
    });
    expect(describeConnectError(e, pg)).toContain(
      'check the user and password in DATABASE_URL (or PGPASSWORD)',
    );
  });
});
