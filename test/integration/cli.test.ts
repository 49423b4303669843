import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { runCli } from '../../server/cli/run.js';
import { projectRoot } from '../../server/lib/project-root.js';
import { rebuildRollups } from '../../db/stores/rollups.js';
import { openDb } from '../../db/connect.js';
import { generateEvents } from '../helpers/bulk-events.js';
import { runCliIn } from '../helpers/cli.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const run = promisify(execFile);

const cli = runCliIn;

describe('operator CLI', () => {
  let t: TestDeps;
  const base = Date.UTC(2026, 10, 27, 9, 0, 0);

  beforeAll(async () => {
    t = await createTestDeps();
    const db = t.deps.db;
    const [a] = await db('portals')
      .insert({
        member_id: 'member-a',
        domain: 'a.bitrix24.com',
        status: 'installed',
        token_expires_at: base + 3600_000,
        events_bound: '["ONCRMDEALUPDATE"]',
        updated_at: base,
      })
      .returning('id');
    await db('portals').insert({
      member_id: 'member-b',
      domain: 'b.bitrix24.com',
      status: 'uninstalled',
      updated_at: base,
    });
    const portalId = typeof a === 'object' ? (a as { id: number }).id : (a as number);
    const ev = (i: number, status: string, extra: Record<string, unknown> = {}) => ({
      portal_id: portalId,
      member_id: 'member-a',
      event: i % 2 ? 'ONCRMDEALUPDATE' : 'ONCRMDEALADD',
      entity_type: 'deal',
      entity_id: String(100 + i),
      status,
      attempts: status === 'failed' ? 3 : 1,
      received_at: base + i * 60_000,
      ...extra,
    });
    await db('events').insert([
      ev(0, 'processed', { processed_at: base + 1000 }),
      ev(1, 'processed', { processed_at: base + 60_000 + 3000 }),
      ev(2, 'failed', { last_error: 'HTTP 500 from accounting' }),
      ev(3, 'received'),
      ev(4, 'unverified'),
      ev(5, 'skipped'),
    ]);
    await db('events').insert({
      member_id: 'unknown',
      event: 'ONCRMDEALADD',
      status: 'rejected',
      reject_reason: 'unknown_portal',
      received_at: base,
    });
    // Seeded around the stores: the figures come from rollups, so recount them.
    await rebuildRollups(db);
    t.clock.set(base + 10 * 60_000);
  });
  afterAll(async () => {
    await t.close();
  });

  it('prints status figures per portal and in total as one JSON document', async () => {
    const r = await cli(t, ['status', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.total).toMatchObject({
      received: 1,
      processing: 0,
      processed: 2,
      failed: 1,
      skipped: 1,
      rejected: 1,
      unverified: 1,
      backlog: 2,
    });
    expect(doc.total.oldestPendingSeconds).toBe(7 * 60);
    expect(doc.total.avgProcessingMs).toBe(2000);
    expect(doc.total.p95ProcessingMs).toBe(3000);
    const a = doc.portals.find((p: { memberId: string }) => p.memberId === 'member-a');
    expect(a).toMatchObject({ processed: 2, backlog: 2, rejected: 0 });
  });

  it('prints a backlog younger than a second as "<1", not 0, in the text table', async () => {
    t.clock.set(base + 3 * 60_000 + 400); // 0.4 s after the oldest pending delivery
    try {
      const text = (await cli(t, ['status'])).out;
      const head = text.split('\n')[0]!.split(/\s{2,}/);
      const total = text.split('\n')[1]!.split(/\s{2,}/);
      expect(total[head.indexOf('backlog')]).not.toBe('0');
      expect(total[head.indexOf('oldest pending seconds')]).toBe('<1');
      // The JSON keeps the contract's whole seconds.
      expect(JSON.parse((await cli(t, ['status', '--json'])).out).total.oldestPendingSeconds).toBe(
        0,
      );
    } finally {
      t.clock.set(base + 10 * 60_000);
    }
  });

  it('lists events newest first with the contract fields and filters', async () => {
    const all = JSON.parse((await cli(t, ['events', '--json'])).out);
    expect(all).toHaveLength(7);
    expect(Object.keys(all[0]).sort()).toEqual(
      [
        'attempts',
        'entityId',
        'entityType',
        'event',
        'id',
        'lastError',
        'memberId',
        'processedAt',
        'receivedAt',
        'status',
      ].sort(),
    );
    expect(all[0].id).toBeGreaterThan(all[1].id);
    const failed = JSON.parse((await cli(t, ['events', '--status', 'failed', '--json'])).out);
    expect(failed).toEqual([
      expect.objectContaining({
        entityId: '102',
        lastError: 'HTTP 500 from accounting',
        attempts: 3,
      }),
    ]);
    const ranged = JSON.parse(
      (
        await cli(t, [
          'events',
          '--portal',
          'member-a',
          '--event',
          'ONCRMDEALADD',
          '--from',
          new Date(base + 60_000).toISOString(),
          '--to',
          new Date(base + 5 * 60_000).toISOString(),
          '--json',
        ])
      ).out,
    );
    expect(ranged.map((e: { entityId: string }) => e.entityId)).toEqual(['104', '102']);
    expect(JSON.parse((await cli(t, ['events', '--limit', '2', '--json'])).out)).toHaveLength(2);
    // A typo in --event lists nothing: the likely name is said; a right name with no events
    // says nothing.
    const typo = await cli(t, ['events', '--event', 'ONCRMDEALAD']);
    expect(typo.code).toBe(0);
    expect(typo.err).toBe('no ONCRMDEALAD events; did you mean ONCRMDEALADD?\n');
    expect((await cli(t, ['events', '--event', 'ONCRMLEADADD'])).err).toBe('');
    // Swapped bounds listed nothing, as if no event had come.
    const swapped = await cli(t, ['events', '--from', '2026-12-07', '--to', '2026-12-01']);
    expect({ code: swapped.code, err: swapped.err }).toEqual({
      code: 2,
      err: 'b24hooks events: --to must not be before --from\n',
    });
  });

  /** Runs `check` with one more event of member-a stored (received at base + 9 min), then removes it. */
  async function withEvent(values: Record<string, unknown>, check: (id: number) => Promise<void>) {
    const db = t.deps.db;
    const [row] = await db('events')
      .insert({ member_id: 'member-a', received_at: base + 9 * 60_000, ...values })
      .returning('id');
    const id = typeof row === 'object' ? (row as { id: number }).id : (row as number);
    try {
      await check(id);
    } finally {
      await db('events').where({ id }).delete();
    }
  }

  it('shows an event about the app itself (no entity id) without a "null" in the table', async () => {
    const app = { event: 'ONAPPINSTALL', entity_type: 'app', entity_id: null };
    await withEvent({ ...app, status: 'processed', attempts: 0 }, async () => {
      const r = await cli(t, ['events', '--event', 'ONAPPINSTALL']);
      expect(r.code).toBe(0);
      const line = r.out.split('\n').find((l) => l.includes('ONAPPINSTALL'))!;
      expect(line).toMatch(/ONAPPINSTALL\s+app\s+processed/);
      expect(line).not.toContain('null');
    });
  });

  it("marks a skipped event's note as a note in the table, and keeps it in --json's lastError", async () => {
    const deal = { event: 'ONCRMDEALUPDATE', entity_type: 'deal', entity_id: '4242' };
    const note = { status: 'skipped', attempts: 1, last_error: 'no rule matched' };
    await withEvent({ ...deal, ...note }, async (id) => {
      const r = await cli(t, ['events', '--limit', '1']);
      expect(r.out.split('\n')[0]).toMatch(/\berror or note$/);
      const line = r.out.split('\n').find((l) => l.includes('4242'))!;
      expect(line).toMatch(/skipped\s+1\s+note: no rule matched$/);
      const json = JSON.parse((await cli(t, ['events', '--limit', '1', '--json'])).out);
      expect(json[0]).toMatchObject({ id, status: 'skipped', lastError: 'no rule matched' });
    });
  });

  /** The reason was stored but `events` showed "-" and `lastError: null`. */
  it('says why a delivery was rejected', async () => {
    const r = await cli(t, ['events', '--status', 'rejected']);
    expect(r.out.split('\n').find((l) => l.includes('unknown'))).toMatch(
      /rejected: unknown_portal$/,
    );
    const json = JSON.parse((await cli(t, ['events', '--status', 'rejected', '--json'])).out);
    expect(json).toEqual([expect.objectContaining({ lastError: 'rejected: unknown_portal' })]);
  });

  it('lists portals, uninstalled ones included', async () => {
    const r = JSON.parse((await cli(t, ['portals', '--json'])).out);
    expect(r).toEqual([
      {
        memberId: 'member-a',
        domain: 'a.bitrix24.com',
        status: 'installed',
        tokenExpiresAt: new Date(base + 3600_000).toISOString(),
        events: ['ONCRMDEALUPDATE'],
        authMode: 'oauth',
        pauseReason: null,
      },
      expect.objectContaining({
        memberId: 'member-b',
        status: 'uninstalled',
        tokenExpiresAt: null,
        events: [],
      }),
    ]);
  });

  it('exits 2 with a one-line reason on bad usage', async () => {
    for (const argv of [
      ['events', '--status', 'nope'],
      ['events', '--from', 'yesterday'],
      ['events', '--bogus'],
      ['frobnicate'],
      [],
    ]) {
      const r = await cli(t, argv);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err.trim().length).toBeGreaterThan(0);
    }
    expect((await cli(t, ['events', '--status', 'nope'])).err.trim().split('\n')).toHaveLength(1);
  });

  it('refuses what a typo would quietly turn into another request', async () => {
    for (const [argv, reason] of [
      // Dates Date.parse rolls over or half-reads: a replay would have widened its range.
      [['events', '--from', '2026-11-31'], /--from must be an ISO date/],
      [['events', '--from', '2026-02-30T00:00:00Z'], /--from must be an ISO date/],
      [['events', '--to', '2026-12-05T24:00:00Z'], /--to must be an ISO date/],
      [['events', '--from', '2026-12-05junk'], /--from must be an ISO date/],
      [['replay', '--from', '2026-12-05junk', '--to', '2026-12-06', '--dry-run'], /--from/],
      // A portal that does not exist reads as "no events".
      [['events', '--portal', 'nosuch'], /no portal with member_id "nosuch"/],
      // Words the command does not take, and another subcommand's options.
      [['events', 'foo'], /unexpected argument "foo"/],
      [['status', 'extra'], /unexpected argument "extra"/],
      [['migrate', 'now'], /unexpected argument "now"/],
      [['rules', 'export', '--id', '5'], /rules export does not take --id/],
      [['rules', 'export', '--event', 'X'], /rules export does not take --event/],
      // A malformed webhook URL is bad usage, not a failure.
      [
        [
          'connect-webhook',
          '--webhook-url',
          'not a url',
          '--application-token',
          'x'.repeat(10),
          '--member-id',
          'm1',
        ],
        /--webhook-url is not a URL/,
      ],
    ] as Array<[string[], RegExp]>) {
      const r = await cli(t, argv);
      expect([argv.join(' '), r.code]).toEqual([argv.join(' '), 2]);
      expect(r.out).toBe('');
      expect(r.err).toMatch(reason);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
    // Controls: valid dates with a zone or a time, a portal known only by its rejected
    // posts, and a limit past any table's size all work.
    for (const argv of [
      ['events', '--from', '2026-11-27T10:00:00+03:00', '--to', '2026-11-28'],
      ['events', '--from', '2024-02-29T23:59:59.5Z'],
      ['events', '--portal', 'unknown'],
      ['events', '--limit', '99999999999999999999', '--json'],
      ['rules', 'export', '--json'],
    ]) {
      const r = await cli(t, argv);
      expect([argv.join(' '), r.code, r.err]).toEqual([argv.join(' '), 0, '']);
    }
    expect(
      JSON.parse((await cli(t, ['events', '--limit', '99999999999999999999', '--json'])).out),
    ).toHaveLength(7);
  });

  it('names an unknown option with the command usage, not advice about positionals', async () => {
    const r = await cli(t, ['status', '--portal', 'member-a']);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      'b24hooks status: unknown option --portal; usage: b24hooks status [--json]\n',
    );
  });

  it('says how to write a value starting with "-", and names an option without its value', async () => {
    const negative = await cli(t, ['events', '--limit', '-5']);
    expect(negative.code).toBe(2);
    expect(negative.err).toBe(
      'b24hooks events: --limit is followed by something starting with "-", taken for an option: write a value that starts with "-" as --limit=-…\n',
    );
    // Written that way, the value reaches the command's own check.
    expect((await cli(t, ['events', '--limit=-5'])).err).toBe(
      'b24hooks events: --limit must be a positive whole number, got "-5"\n',
    );
    const bare = await cli(t, ['events', '--portal']);
    expect(bare.code).toBe(2);
    expect(bare.err).toMatch(
      /^b24hooks events: --portal needs a value; usage: b24hooks events \[--portal MEMBER_ID\]/,
    );
  });

  /**
   * `status`, `events` and `portals` only read. In a mistyped DATA_DIR they made a new data
   * dir, database and key and printed zeros; on an older database they applied the
   * migrations unasked, under the old release's servers; with secrets.json lost they wrote
   * a new one.
   */
  it('reads only: no data dir, database, key or migration is made by status, events or portals, nor any command but migrate', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'b24h-cli-ro-'));
    try {
      const run = async (argv: string[], env: Record<string, string> = {}) => {
        let err = '';
        const code = await runCli(argv, env, { out: () => undefined, err: (x) => (err += x) });
        return { code, err };
      };
      const typo = path.join(dir, 'typo');
      for (const cmd of ['status', 'events', 'portals']) {
        const r = await run([cmd], { DATA_DIR: typo });
        expect([cmd, r.code, r.err]).toEqual([cmd, 1, expect.stringContaining('no database at')]);
      }
      // Nor any other command but migrate: an empty `rules export` taken for a backup, dry
      // runs that wrote a database and a key and said `would remove: 0 rows`.
      const rules = path.join(dir, 'map.json');
      fs.writeFileSync(rules, JSON.stringify({ rules: [] }));
      for (const argv of [
        ['rules', 'export'],
        ['rules', 'import', rules, '--dry-run'],
        ['rules', 'import', rules],
        ['prune', '--dry-run'],
        ['prune'],
        ['replay', '--from', '2026-12-01T00:00:00Z', '--to', '2026-12-08T00:00:00Z', '--dry-run'],
        ['rollups', 'rebuild'],
        ['recover', 'sweep'],
      ]) {
        const r = await run(argv, { DATA_DIR: typo });
        expect([argv, r.code, r.err]).toEqual([argv, 1, expect.stringContaining('no database at')]);
      }
      expect(fs.existsSync(typo)).toBe(false);
      // A database two migrations old, its key file beside it.
      const data = path.join(dir, 'old');
      expect((await run(['migrate'], { DATA_DIR: data })).code).toBe(0); // control: it works
      const db = openDb({ client: 'sqlite', filename: path.join(data, 'b24hooks.sqlite') });
      const names = async () => ((await db('knex_migrations').pluck('name')) as string[]).length;
      const all = await names();
      const last = (await db('knex_migrations')
        .orderBy('id', 'desc')
        .limit(2)
        .pluck('name')) as string[];
      await db('knex_migrations').whereIn('name', last).delete();
      const older = await run(['status'], { DATA_DIR: data });
      expect(older.code).toBe(1);
      expect(older.err).toContain('older than this release (2 migrations to apply');
      expect(await names()).toBe(all - 2);
      await db('knex_migrations').insert(
        last.map((name) => ({ name, batch: 1, migration_time: new Date() })),
      );
      expect((await run(['status'], { DATA_DIR: data })).code).toBe(0); // control
      await db.destroy();
      // secrets.json lost: said, and not replaced by a new key.
      fs.renameSync(path.join(data, 'secrets.json'), path.join(dir, 'kept.json'));
      const lost = await run(['events'], { DATA_DIR: data });
      expect([lost.code, lost.err]).toEqual([1, expect.stringContaining('no secrets.json in')]);
      expect(fs.existsSync(path.join(data, 'secrets.json'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an ENV_FILE that does not exist, as the server does', async () => {
    const r = await run(process.execPath, [bin(), 'status'], {
      env: { ...process.env, ENV_FILE: '/nonexistent/b24hooks.env', DATA_DIR: t.dir },
    }).catch((e: { code: number; stderr: string }) => e);
    expect([(r as { code?: number }).code, (r as { stderr: string }).stderr]).toEqual([
      1,
      expect.stringContaining('ENV_FILE /nonexistent/b24hooks.env does not exist'),
    ]);
  });

  it('exits 1 with a reason when the configuration is broken', async () => {
    let err = '';
    const code = await runCli(
      ['status'],
      {
        DATA_DIR: t.dir,
        ...t.dbEnv,
        WORKER_CONCURRENCY: 'many',
        SESSION_SECRET: 'x'.repeat(20),
        TOKEN_ENCRYPTION_KEY: 'a'.repeat(64),
      },
      { out: () => undefined, err: (s) => (err += s) },
    );
    expect(code).toBe(1);
    expect(err).toContain('WORKER_CONCURRENCY');
  });

  /** The package bin, and the environment it runs in against this test's data. */
  const bin = () => path.join(projectRoot(), 'server', 'bin', 'b24hooks.js');
  const binEnv = (more: Record<string, string>) => ({
    ...process.env,
    DATA_DIR: t.dir,
    SESSION_SECRET: t.deps.config.sessionSecret,
    TOKEN_ENCRYPTION_KEY: t.deps.config.tokenEncryptionKey.toString('hex'),
    ...more,
  });

  it('runs as the package bin with only JSON on stdout', async () => {
    const env = binEnv({ LOG_LEVEL: 'debug', ...t.dbEnv });
    const { stdout } = await run(process.execPath, [bin(), 'migrate', '--json'], { env });
    expect(JSON.parse(stdout)).toEqual({ applied: [] });
    const status = await run(process.execPath, [bin(), 'status', '--json'], { env });
    expect(JSON.parse(status.stdout).total.processed).toBe(2);
    await expect(
      run(process.execPath, [bin(), 'events', '--limit', '0'], { env }),
    ).rejects.toMatchObject({ code: 2 });
  });

  it('keeps stdout empty when the database cannot be reached (--json)', async () => {
    const env = binEnv({
      // Port 1 on loopback: nothing listens, the connection is refused at once.
      DATABASE_URL: 'postgres://ops:not-this-password@127.0.0.1:1/b24hooks',
    });
    const failed = await run(process.execPath, [bin(), 'status', '--json'], { env }).then(
      () => undefined,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(failed?.code).toBe(1);
    // knex used to print "Acquire connection error: …" with console.log, on stdout.
    expect(failed?.stdout).toBe('');
    expect(failed?.stderr).toContain('refused the connection');
    // Said once, in the command's line: not again in knex's raw warning before it.
    expect(failed?.stderr).not.toContain('Acquire connection error');
    expect(failed?.stderr.trim().split('\n')).toHaveLength(1);
    expect(failed?.stderr).not.toContain('not-this-password');
    // The reason, not a stack trace with our install paths.
    expect(failed?.stderr).not.toMatch(/(\n|\\n)\s+at /);
  });

  it('stops quietly when its reader stops early (piped into head)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'b24hooks-cli-'));
    try {
      const env = { ...binEnv({}), DATA_DIR: dir, DATABASE_URL: '' };
      await run(process.execPath, [bin(), 'migrate'], { env });
      const db = openDb({ client: 'sqlite', filename: path.join(dir, 'b24hooks.sqlite') });
      await generateEvents(db, [
        { portalId: null, memberId: 'm1', status: 'processed', receivedAt: base, count: 5000 },
      ]);
      await db.destroy();
      // `b24hooks events --limit 5000 | head -1`, three times (the crash came with timing).
      for (let i = 0; i < 3; i++) {
        const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>(
          (resolve) => {
            const child = spawn(
              'bash',
              [
                '-c',
                `"${process.execPath}" "${bin()}" events --limit 5000 | head -1 >/dev/null; exit \${PIPESTATUS[0]}`,
              ],
              { env },
            );
            let err = '';
            child.stderr.on('data', (d: Buffer) => (err += d.toString()));
            child.on('exit', (c) => resolve({ code: c, stderr: err }));
          },
        );
        expect([i, code, stderr]).toEqual([i, 0, '']);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says why a database file is unreadable, in one line and without a stack trace', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'b24hooks-cli-'));
    try {
      fs.writeFileSync(path.join(dir, 'b24hooks.sqlite'), 'not a database\n');
      const failed = await run(process.execPath, [bin(), 'status', '--json'], {
        env: { ...binEnv({}), DATA_DIR: dir, DATABASE_URL: '' },
      }).then(
        () => undefined,
        (e: { code: number; stdout: string; stderr: string }) => e,
      );
      expect(failed?.code).toBe(1);
      expect(failed?.stdout).toBe('');
      expect(failed?.stderr).toContain('b24hooks.sqlite is not a SQLite database: is DATA_DIR');
      expect(failed?.stderr).not.toMatch(/(\n|\\n)\s+at /);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
