import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/**
 * PostgreSQL for tests: a throwaway cluster started from the machine's own
 * binaries, and one fresh database per test file on it.
 *
 * - `B24H_TEST_DB=pg` makes test/helpers (test-deps, seed-db, CLI) run on PostgreSQL.
 * - `B24H_TEST_PG_URL` is an admin URL of a server that may create databases (CI starts one
 *   in .ci/run); without it, `startPgCluster` starts one in a temp dir.
 * - `B24H_TEST_PG_TEMPLATE` names an already migrated database to copy (test/helpers/pg-run.ts
 *   makes one), so a test database costs a file copy instead of every migration.
 */

/** Whether this test run is on PostgreSQL. */
export const onPg = (): boolean => process.env.B24H_TEST_DB === 'pg';

const PG_PROGRAMS = ['initdb', 'pg_ctl', 'postgres'] as const;

/**
 * The directory holding initdb, pg_ctl and postgres: PATH first, then Debian's
 * /usr/lib/postgresql/<version>/bin (newest version first), which is not on PATH.
 */
export function findPgBin(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  const debian = '/usr/lib/postgresql';
  if (fs.existsSync(debian)) {
    const versions = fs
      .readdirSync(debian)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) dirs.push(path.join(debian, v, 'bin'));
  }
  return dirs.find((d) => PG_PROGRAMS.every((p) => fs.existsSync(path.join(d, p))));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** initdb refuses to run as root: as root, the cluster belongs to the `postgres` user. */
function runAs(): { uid: number; gid: number; user: string } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const user = process.env.B24H_TEST_PG_USER ?? 'postgres';
  const id = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  if (id.status !== 0) {
    throw new Error(
      `PostgreSQL cannot run as root and there is no user '${user}' to run it as: ` +
        `create one (useradd ${user}) or set B24H_TEST_PG_URL to a running server`,
    );
  }
  const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' });
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()), user };
}

export interface PgCluster {
  /** Admin URL (user postgres, database postgres) on 127.0.0.1. */
  readonly url: string;
  readonly dir: string;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /**
   * Keep fsync and synchronous commit on, as in production (benchmarks). Tests run faster
   * without: a test cluster never has to survive a power cut.
   * @default false
   */
  durable?: boolean;
}

/**
 * Starts a throwaway cluster in a temp dir, listening on 127.0.0.1 only, on a free port,
 * trust authentication (nothing but this machine can reach it). `stop()` ends it and removes
 * its files.
 */
export async function startPgCluster(opts: ClusterOptions = {}): Promise<PgCluster> {
  const bin = findPgBin();
  if (!bin) throw new Error('no PostgreSQL binaries (initdb, pg_ctl, postgres) found');
  const owner = runAs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'b24hooks-pg-'));
  if (owner) fs.chownSync(dir, owner.uid, owner.gid);
  const data = path.join(dir, 'data');
  const run = (program: string, args: string[]) => {
    const cmd = owner
      ? { file: 'runuser', args: ['-u', owner.user, '--', path.join(bin, program), ...args] }
      : { file: path.join(bin, program), args };
    return execFileSync(cmd.file, cmd.args, { cwd: dir, stdio: 'pipe', encoding: 'utf8' });
  };
  try {
    const initArgs = ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale'];
    run('initdb', opts.durable ? initArgs : [...initArgs, '--no-sync']);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${(e as { stderr?: string }).stderr ?? String(e)}`);
  }
  const settings = [
    '-h 127.0.0.1',
    `-k ${dir}`,
    '-c max_connections=300',
    ...(opts.durable ? [] : ['-F', '-c synchronous_commit=off', '-c full_page_writes=off']),
  ];
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      run('pg_ctl', [
        '-D',
        data,
        '-l',
        path.join(dir, 'server.log'),
        '-w',
        '-t',
        '60',
        '-o',
        [`-p ${port}`, ...settings].join(' '),
        'start',
      ]);
      return {
        url: `postgres://postgres@127.0.0.1:${port}/postgres`,
        dir,
        async stop() {
          try {
            run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        },
      };
    } catch (e) {
      // Most likely the port was taken between our probe and the server's bind: try another.
      const log = path.join(dir, 'server.log');
      lastError = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2000) : String(e);
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`PostgreSQL did not start:\n${lastError}`);
}

/** `url` with another database name. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Runs statements on the admin database of `adminUrl`, one connection; the last one's rows. */
export async function adminQuery(
  adminUrl: string,
  ...statements: string[]
): Promise<Array<Record<string, unknown>>> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    let rows: Array<Record<string, unknown>> = [];
    for (const s of statements) rows = (await client.query(s)).rows;
    return rows;
  } finally {
    await client.end();
  }
}

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  /** Drops it (kept with KEEP_TEST_DB=1, as the SQLite temp dirs are). */
  drop(): Promise<void>;
}

/**
 * A new, empty (or template-copied) database on the test server named by B24H_TEST_PG_URL.
 * Each test file (each createTestDeps) gets its own, so files run in parallel without
 * seeing each other's rows.
 */
export async function createTestDatabase(
  opts: { template?: string | null } = {},
): Promise<TestDatabase> {
  const admin = process.env.B24H_TEST_PG_URL;
  if (!admin) {
    throw new Error(
      'B24H_TEST_DB=pg needs B24H_TEST_PG_URL (an admin URL of a PostgreSQL server); ' +
        '`npm run test:pg` starts a throwaway server and sets it',
    );
  }
  const name = `b24h_t_${randomBytes(6).toString('hex')}`;
  const template =
    opts.template === undefined ? process.env.B24H_TEST_PG_TEMPLATE : (opts.template ?? undefined);
  // FILE_COPY (PostgreSQL 15+; pg-run.ts says when) copies the small template's files instead
  // of writing them through the WAL: about 130 ms a database instead of 180.
  const strategy =
    template && process.env.B24H_TEST_PG_FILE_COPY === '1' ? ' strategy file_copy' : '';
  await adminQuery(
    admin,
    `create database ${name}${template ? ` template ${pg.escapeIdentifier(template)}` : ''}${strategy}`,
  );
  return {
    url: withDatabase(admin, name),
    name,
    async drop() {
      if (process.env.KEEP_TEST_DB === '1') {
        process.stderr.write(`kept test database ${withDatabase(admin, name)}\n`);
        return;
      }
      await adminQuery(admin, `drop database if exists ${name} with (force)`);
    },
  };
}

/** The server's version as a number (150004 for 15.4). */
export async function serverVersion(adminUrl: string): Promise<number> {
  const [row] = await adminQuery(adminUrl, 'show server_version_num');
  return Number(row?.server_version_num ?? 0);
}
