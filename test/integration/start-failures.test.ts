import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { runCli } from '../../server/cli/run.js';
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js';
import { tempDir } from '../helpers/temp-dir.js';

const PASSWORD = 'Pa55-never-printed';

/** Starts the built server (as `npm start` does), which must fail: its exit code and stderr. */
async function startServer(env: Record<string, string>): Promise<{ code: number; err: string }> {
  const failed = await spawnServer(env).then(
    async (s) => {
      await s.stop();
      throw new Error('the server started');
    },
    (e: Error) => e,
  );
  const m = /^server exited with (\d+):\n([\s\S]*)$/.exec(failed.message);
  if (!m) throw failed;
  return { code: Number(m[1]), err: m[2]! };
}

async function cli(argv: string[], env: Record<string, string>) {
  let out = '';
  let err = '';
  const code = await runCli(argv, env, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** The last lines the process wrote, with its banners (`***`) and JSON log lines left out. */
const said = (err: string) =>
  err
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('***') && !l.startsWith('{'))
    .join('\n');

/**
 * An operator whose database cannot be reached or opened gets one line saying where and what
 * to check, from the server and from the CLI alike: it was a stack trace from inside pg,
 * knex or better-sqlite3 (and a port above 65535 a TypeError at the first query). The
 * password of DATABASE_URL is never part of it.
 */
describe('start-up failures outside the configuration check', () => {
  it('a PostgreSQL that refuses the connection: one line naming user, host and port', async () => {
    const tmp = tempDir('b24h-start-');
    try {
      const port = await closedPort();
      const env = {
        DATA_DIR: tmp.dir,
        DATABASE_URL: `postgres://app:${PASSWORD}@127.0.0.1:${port}/hooks`,
      };
      const line = `PostgreSQL at app@127.0.0.1:${port}/hooks (DATABASE_URL) refused the connection: is PostgreSQL running and listening there?`;
      const server = await startServer(env);
      expect(server.code).toBe(1);
      expect(said(server.err)).toBe(`b24hooks: cannot start: ${line}`);
      expect(server.err).not.toContain(PASSWORD);
      const status = await cli(['migrate'], env);
      expect(status.code).toBe(1);
      expect(status.err).toBe(`b24hooks migrate: ${line}\n`);
    } finally {
      tmp.cleanup();
    }
  });

  it('a DATABASE_URL that node-postgres cannot parse is a configuration error at once', async () => {
    const tmp = tempDir('b24h-start-');
    try {
      const env = {
        DATA_DIR: tmp.dir,
        DATABASE_URL: `postgres://app:${PASSWORD}@127.0.0.1:99999/hooks`,
      };
      const server = await startServer(env);
      expect(server.code).toBe(1);
      expect(said(server.err)).toBe(
        'b24hooks: invalid configuration:\n' +
          '  - DATABASE_URL is not a valid postgres:// URL (a port above 65535, or a character in the user or password that must be percent-encoded, such as / # ?)',
      );
      expect(server.err).not.toContain(PASSWORD);
      // A `#` in the password, not percent-encoded: its part after the `@` was taken for the
      // host, and the error named it, a piece of the password.
      const hashed = await cli(['migrate'], {
        ...env,
        DATABASE_URL: `postgres://app:Pa55@ss#word1@127.0.0.1:5432/hooks`,
      });
      expect(hashed.code).toBe(1);
      expect(hashed.err).toContain('DATABASE_URL is not a valid postgres:// URL');
      expect(hashed.err).not.toMatch(/ss#word1|\bss:5432/);
      // Control: the same URL with a valid port passes the check (and fails to connect).
      const valid = await cli(['migrate'], {
        ...env,
        DATABASE_URL: env.DATABASE_URL.replace('99999', String(await closedPort())),
      });
      expect(valid.err).toMatch(/refused the connection/);
    } finally {
      tmp.cleanup();
    }
  });

  it('a file that is not a SQLite database, and a secrets.json that is not JSON', async () => {
    const tmp = tempDir('b24h-start-');
    try {
      fs.writeFileSync(
        path.join(tmp.dir, 'b24hooks.sqlite'),
        'these are not the pages you are looking for\n'.repeat(200),
      );
      const file = path.join(tmp.dir, 'b24hooks.sqlite');
      const server = await startServer({ DATA_DIR: tmp.dir });
      expect(server.code).toBe(1);
      expect(said(server.err)).toBe(
        `b24hooks: cannot start: ${file} is not a SQLite database: is DATA_DIR (or DATABASE_URL) right?`,
      );
      const status = await cli(['status'], { DATA_DIR: tmp.dir });
      expect(status.err).toBe(
        `b24hooks status: ${file} is not a SQLite database: is DATA_DIR (or DATABASE_URL) right?\n`,
      );

      const secrets = path.join(tmp.dir, 'secrets.json');
      fs.writeFileSync(secrets, '{"sessionSecret": "abc", "tokenEncryp');
      const broken = await startServer({ DATA_DIR: tmp.dir });
      expect(broken.code).toBe(1);
      expect(said(broken.err)).toBe(
        `b24hooks: invalid configuration:\n  - ${secrets} is damaged: it is not JSON (restore it from the backup taken with the database)`,
      );
      expect(broken.err).not.toContain('abc');
    } finally {
      tmp.cleanup();
    }
  });

  it('an ENV_FILE that does not exist: one line naming it, no stack', async () => {
    const tmp = tempDir('b24h-start-');
    try {
      const missing = path.join(tmp.dir, 'no.env');
      const server = await startServer({ DATA_DIR: tmp.dir, ENV_FILE: missing });
      expect(server.code).toBe(1);
      expect(said(server.err)).toBe(
        `b24hooks: invalid configuration:\n  - ENV_FILE names ${missing}, which does not exist`,
      );
    } finally {
      tmp.cleanup();
    }
  });

  it('a configuration refused for another variable makes no DATA_DIR and no key', async () => {
    const tmp = tempDir('b24h-start-');
    try {
      const dir = path.join(tmp.dir, 'data');
      const env = { DATA_DIR: dir, WORKER_CONCURRENCY: '0' };
      const server = await startServer(env);
      expect(server.code).toBe(1);
      expect(said(server.err)).toContain('WORKER_CONCURRENCY must be an integer from 1 to 256');
      const migrate = await cli(['migrate'], env);
      expect(migrate.err).toContain('WORKER_CONCURRENCY must be an integer from 1 to 256');
      expect(fs.existsSync(dir)).toBe(false);
      // Control: the same folder with the variable right is made, with its key.
      expect((await cli(['migrate'], { DATA_DIR: dir })).code).toBe(0);
      expect(fs.existsSync(path.join(dir, 'secrets.json'))).toBe(true);
    } finally {
      tmp.cleanup();
    }
  });

  it('a database without its secrets.json: refused, and no new key is written beside it', async () => {
    // The start wrote a fresh secrets.json, then refused as the new key opened nothing: a
    // file with the wrong key was left in DATA_DIR, to be backed up as the right one.
    const tmp = tempDir('b24h-start-');
    try {
      expect((await cli(['migrate'], { DATA_DIR: tmp.dir })).code).toBe(0);
      const secrets = path.join(tmp.dir, 'secrets.json');
      fs.rmSync(secrets);
      const server = await startServer({ DATA_DIR: tmp.dir });
      expect(server.code).toBe(1);
      expect(said(server.err)).toBe(
        `b24hooks: invalid configuration:\n  - ${path.join(tmp.dir, 'b24hooks.sqlite')} is there but ${secrets} is not: the key it was written with is in the secrets.json backed up with it (or in TOKEN_ENCRYPTION_KEY); put it back. A new key would open none of its tokens`,
      );
      expect(fs.existsSync(secrets)).toBe(false);
      expect((await cli(['migrate'], { DATA_DIR: tmp.dir })).code).toBe(1);
      expect(fs.existsSync(secrets)).toBe(false);
    } finally {
      tmp.cleanup();
    }
  });

  const pgUrl = process.env.B24H_TEST_DB === 'pg' ? process.env.B24H_TEST_PG_URL : undefined;
  (pgUrl ? it : it.skip)(
    'a PostgreSQL database that does not exist (the PostgreSQL pass)',
    async () => {
      const tmp = tempDir('b24h-start-');
      try {
        const url = new URL(pgUrl!);
        url.pathname = '/b24h_no_such_db';
        const env = { DATA_DIR: tmp.dir, DATABASE_URL: url.toString() };
        const place = `${url.username ? `${url.username}@` : ''}${url.hostname}:${url.port || 5432}/b24h_no_such_db`;
        const server = await startServer(env);
        expect(server.code).toBe(1);
        expect(said(server.err)).toBe(
          `b24hooks: cannot start: PostgreSQL at ${place} (DATABASE_URL): database "b24h_no_such_db" does not exist; create it, or correct the database name in DATABASE_URL`,
        );
        // Control: the server's own database is reachable with the same user and host.
        const ok = await cli(['migrate'], { ...env, DATABASE_URL: pgUrl! });
        expect(ok.err).toBe('');
      } finally {
        tmp.cleanup();
      }
    },
  );

  it('a second server on the same SQLite file is refused; the lock goes with a killed server', async () => {
    const tmp = tempDir('b24h-start-');
    let first: SpawnedServer | undefined;
    try {
      first = await spawnServer({ DATA_DIR: tmp.dir });
      const file = path.join(tmp.dir, 'b24hooks.sqlite');
      const second = await startServer({ DATA_DIR: tmp.dir });
      expect(second.code).toBe(1);
      expect(said(second.err)).toBe(
        `b24hooks: invalid configuration:\n  - another b24hooks server is running on ${file}: two would share its deliveries, worker and retention; stop it, or give this one its own DATA_DIR`,
      );
      // The CLI still works beside the server.
      const status = await cli(['status', '--json'], { DATA_DIR: tmp.dir });
      expect(status.code).toBe(0);
      // A server killed outright leaves no lock behind.
      await first.stop('SIGKILL');
      const third = await spawnServer({ DATA_DIR: tmp.dir });
      expect(await third.stop()).toBe(0);
    } finally {
      await first?.stop('SIGKILL');
      tmp.cleanup();
    }
  });
});
