import { spawn } from 'node:child_process';
import path from 'node:path';
import { openDb } from '../../db/connect.js';
import { migrateToLatest } from '../../db/migrate.js';
import { projectRoot } from '../../server/lib/project-root.js';
import { SQLITE_ONLY } from './pg-pass-scope.js';
import {
  adminQuery,
  createTestDatabase,
  findPgBin,
  serverVersion,
  startPgCluster,
  type PgCluster,
} from './pg.js';

/**
 * `npm run test:pg [jest args]` (built to dist/test/helpers/pg-run.js): runs Jest with
 * B24H_TEST_DB=pg against a PostgreSQL server — the one named by B24H_TEST_PG_URL (CI starts
 * it in .ci/run), or a throwaway cluster started here from the machine's binaries. One
 * migrated template database is made first; every test file copies it.
 *
 * Without PostgreSQL binaries the run is skipped, loudly, except under CI (CI=true), where
 * it fails: CI must test both databases.
 */
async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let cluster: PgCluster | undefined;
  if (!process.env.B24H_TEST_PG_URL) {
    if (!findPgBin()) {
      const msg =
        'no PostgreSQL binaries (initdb, pg_ctl, postgres) on PATH or in /usr/lib/postgresql/*/bin';
      if (process.env.CI) {
        process.stderr.write(`\nPostgreSQL suite FAILED: ${msg}; .ci/run installs them\n`);
        return 1;
      }
      process.stderr.write(
        `\n${'!'.repeat(72)}\n!! PostgreSQL suite SKIPPED: ${msg}.\n` +
          `!! Install them (apt-get install postgresql) or set B24H_TEST_PG_URL.\n${'!'.repeat(72)}\n\n`,
      );
      return 0;
    }
    const t = Date.now();
    cluster = await startPgCluster();
    process.env.B24H_TEST_PG_URL = cluster.url;
    process.stderr.write(`== PostgreSQL test cluster on ${cluster.url} (${Date.now() - t} ms)\n`);
  }
  const admin = process.env.B24H_TEST_PG_URL!;
  const template = await createTestDatabase({ template: null });
  try {
    const db = openDb({ client: 'pg', connectionString: template.url });
    try {
      await migrateToLatest(db);
    } finally {
      await db.destroy();
    }
    const jest = path.join(projectRoot(), 'node_modules', 'jest', 'bin', 'jest.js');
    const fileCopy = (await serverVersion(admin)) >= 150000 ? '1' : '';
    const code = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          jest,
          ...(args.length
            ? args
            : [
                'test/integration',
                '--testPathIgnorePatterns',
                ...SQLITE_ONLY.map((f) => `/test/integration/${f}\\.test\\.ts$`),
              ]),
        ],
        {
          stdio: 'inherit',
          cwd: projectRoot(),
          env: {
            ...process.env,
            NODE_OPTIONS: [process.env.NODE_OPTIONS, '--experimental-vm-modules']
              .filter(Boolean)
              .join(' '),
            B24H_TEST_DB: 'pg',
            B24H_TEST_PG_URL: admin,
            B24H_TEST_PG_TEMPLATE: template.name,
            B24H_TEST_PG_FILE_COPY: fileCopy,
          },
        },
      );
      const forward = (s: NodeJS.Signals) => child.kill(s);
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
    });
    return code;
  } finally {
    await adminQuery(admin, `drop database if exists ${template.name} with (force)`).catch(
      () => undefined,
    );
    await cluster?.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`PostgreSQL suite: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
