import { describe, expect, it } from '@jest/globals';
import { createDeps } from '../../server/deps.js';
import { createCollectingLogger } from '../helpers/collecting-logger.js';
import { tempDir } from '../helpers/temp-dir.js';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../server/config.js';

/**
 * A server started on an older database migrated it without a word in its log (only the
 * CLI's `migrate` printed what it applied): an operator upgrading could not tell it had.
 * (A SQLite file of its own: the PostgreSQL pass's databases start migrated.)
 */
describe('the migrations a start applies', () => {
  it('are logged once, and a start with nothing to apply says nothing', async () => {
    const tmp = tempDir();
    try {
      const config = loadConfig({
        DATA_DIR: tmp.dir,
        SESSION_SECRET: 'test-session-secret-0123456789',
        TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
        B24_CLIENT_ID: 'local.test',
        B24_CLIENT_SECRET: 'test-client-secret',
      });
      const starts = [];
      for (let i = 0; i < 2; i++) {
        const logs = createCollectingLogger();
        const deps = await createDeps(config, { logger: logs.logger });
        await deps.close();
        starts.push(
          logs.lines
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .filter((l) => l.msg === 'database migrations applied'),
        );
      }
      expect(starts[0]).toEqual([
        expect.objectContaining({ migrations: expect.any(Number), first: expect.any(String) }),
      ]);
      expect(starts[0]![0]!.migrations as number).toBeGreaterThan(30);
      expect(starts[1]).toEqual([]);
    } finally {
      tmp.cleanup();
    }
  });
});
