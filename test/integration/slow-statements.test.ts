import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { watchStatements } from '../../db/connect.js';
import { SLOW_STATEMENT_MS, statementWatch } from '../../server/lib/slow-statements.js';
import { createCollectingLogger } from '../helpers/collecting-logger.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * A statement of the main connection that takes long is, on SQLite, a stall of the main thread:
 * every request waits for it. The event-loop delay in /metrics shows that a stall happened;
 * this says which statement it was.
 */
describe('slow statements of the main connection', () => {
  let t: TestDeps;
  const seconds: number[] = [];
  const sqlite = () => t.deps.config.database.client === 'sqlite';

  beforeAll(async () => {
    t = await createTestDeps();
    watchStatements(
      t.deps.db,
      statementWatch({ logger: t.deps.logger, observe: (s) => seconds.push(s), sqlite: sqlite() }),
    );
  });
  afterAll(async () => {
    await t.close();
  });

  const slowLines = () =>
    t.logs.lines
      .map((l) => JSON.parse(l) as { msg: string; ms?: number; sql?: string })
      .filter((l) => l.msg.startsWith('slow SQL statement'));

  it('times every statement and logs a slow one with its SQL, literals masked', async () => {
    const before = seconds.length;
    await t.deps.db.raw('select 1');
    await t.deps.db('portals').count({ n: '*' });
    // Control: both were timed, neither logged.
    expect(seconds.length).toBe(before + 2);
    expect(slowLines()).toHaveLength(0);

    // A scan the size of a large log: counting through a few million rows.
    const started = performance.now();
    await t.deps.db.raw(
      `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)
       SELECT count(*) AS n, 'sk-live-0b5e9d' AS label FROM c`,
    );
    const took = performance.now() - started;
    // Control: it did take long enough to count as slow.
    expect(took).toBeGreaterThanOrEqual(SLOW_STATEMENT_MS);
    const [line] = slowLines();
    expect(line).toBeDefined();
    expect(line!.ms).toBeGreaterThanOrEqual(SLOW_STATEMENT_MS);
    expect(line!.ms).toBeLessThanOrEqual(Math.ceil(took) + 1);
    expect(line!.sql).toMatch(/^WITH RECURSIVE c\(x\) AS \(SELECT 1 UNION ALL/);
    expect(line!.sql).toContain("'?' AS label");
    expect(t.logs.text()).not.toContain('sk-live-0b5e9d');
    if (sqlite()) expect(line!.msg).toContain('the main thread, and every request, waited');
    expect(seconds.at(-1)! * 1000).toBeGreaterThanOrEqual(SLOW_STATEMENT_MS);
  });

  it('times the COMMIT of a transaction on SQLite (its fsync is on the main thread)', async () => {
    if (!sqlite()) return;
    const sql: string[] = [];
    watchStatements(t.deps.db, (s) => sql.push(s));
    await t.deps.db.transaction(async (trx) => {
      await trx('portals').count({ n: '*' });
    });
    expect(sql).toEqual(['BEGIN;', expect.stringContaining('count(*)'), 'COMMIT;']);
  });

  it('logs at most 10 slow statements a minute, then says how many it left out', async () => {
    let now = 0;
    const logs = createCollectingLogger();
    const lines = () => logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const took = statementWatch({
      logger: logs.logger,
      observe: () => undefined,
      sqlite: true,
      now: () => now,
    });
    for (let i = 0; i < 25; i++) took('select 1', 150);
    expect(lines()).toHaveLength(10);
    now = 60_000;
    took('select 1', 150);
    expect(lines()).toHaveLength(12);
    expect(lines()[10]).toMatchObject({
      kind: 'slow_statement',
      left_out: 15,
      msg: expect.stringContaining('slow SQL statement lines left out'),
    });
  });
});

describe('the server', () => {
  let t: TestDeps;
  beforeAll(async () => {
    t = await createTestDeps();
  });
  afterAll(async () => {
    await t.close();
  });

  it('exports the statements it ran in b24hooks_db_statement_seconds', async () => {
    const server = await spawnServer({
      DATA_DIR: t.dir,
      SESSION_SECRET: t.deps.config.sessionSecret,
      TOKEN_ENCRYPTION_KEY: t.deps.config.tokenEncryptionKey.toString('hex'),
      ...t.dbEnv,
    });
    try {
      // /readyz writes to the database: at least one statement after the start.
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const count = Number(/^b24hooks_db_statement_seconds_count (\d+)$/m.exec(text)?.[1]);
      expect(count).toBeGreaterThan(0);
    } finally {
      await server.stop('SIGTERM');
    }
  });
});
