import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * A failed statement's error names its SQL, never the values bound to it: knex used to
 * write every bound value into the message (`insert into … values ('alice@…', …) - UNIQUE
 * constraint failed`), and that message is what the logs, `/healthz` and the pages show of a
 * storage fault. Values are e-mail addresses, chat ids, event bodies. Runs on both databases.
 */
describe('a database error', () => {
  let t: TestDeps;
  beforeAll(async () => {
    t = await createTestDeps();
  });
  afterAll(() => t.close());

  it('keeps the statement and the reason but not the bound values', async () => {
    const row = { scope: 'p1', key: 'alerts.email', value: 'alice@example.com', updated_at: 1 };
    await t.deps.db('settings').insert(row);
    let err: unknown;
    try {
      // The same key again: the database refuses it (a unique key), whatever its engine.
      await t.deps.db('settings').insert({ ...row, value: 'bob.private@example.org' });
    } catch (e) {
      err = e;
    }
    // Control: the insert did fail, with the engine's own reason and the statement.
    // An error of the driver's (another realm under Jest, so no instanceof).
    expect(typeof (err as Error | undefined)?.message).toBe('string');
    const message = (err as Error).message;
    expect(message).toMatch(/insert into ["`]settings["`]/);
    expect(message).toMatch(/unique|duplicate/i);
    expect(message).not.toContain('bob.private@example.org');
    expect(message).not.toContain('alerts.email');
  });

  it('is logged without the fields that quote the refused row (PostgreSQL: detail)', async () => {
    const row = { scope: 'p2', key: 'alerts.chat', value: '-100123456789', updated_at: 1 };
    await t.deps.db('settings').insert(row);
    const err = await t.deps
      .db('settings')
      .insert(row)
      .then(() => undefined)
      .catch((e: unknown) => e);
    // An error of the driver's (another realm under Jest, so no instanceof).
    expect(typeof (err as Error | undefined)?.message).toBe('string');
    t.deps.logger.error({ err }, 'could not store a setting');
    const line = t.logs.lines.find((l) => l.includes('could not store a setting'));
    // Control: the line is there, with the error's type, message and code.
    expect(line).toBeDefined();
    const logged = (JSON.parse(line!) as { err: Record<string, unknown> }).err;
    expect(logged.message).toEqual(expect.stringMatching(/unique|duplicate/i));
    expect(line).not.toContain('alerts.chat');
    expect(line).not.toContain('-100123456789');
    expect(logged.detail).toBeUndefined();
    // Wrapped in another error as a property (a job's failure carrying its cause): the same.
    t.deps.logger.error({ err: Object.assign(new Error('job failed'), { db: err }) }, 'wrapped');
    const wrapped = t.logs.lines.find((l) => l.includes('"wrapped"'));
    expect(wrapped).toContain('job failed');
    expect(wrapped).not.toContain('alerts.chat');
  });
});
