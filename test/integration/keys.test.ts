import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { ENCRYPTED_COLUMNS } from '../../db/stores/encrypted-columns.js';
import { runCli } from '../../server/cli/run.js';
import { createSecretBox } from '../../server/lib/crypto.js';
import { recrypt, rotateKey } from '../../server/keys/rotate.js';
import { openFrameSession } from '../helpers/frame-session.js';
import { runCliIn } from '../helpers/cli.js';
import { ensureSecrets, promoteStagedSecrets } from '../../server/secrets.js';
import { createCollectingLogger } from '../helpers/collecting-logger.js';
import { eventBody } from '../helpers/event-builder.js';
import {
  installPortal,
  spawnedAppEnv,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { createTestDeps } from '../helpers/test-deps.js';
import { tempDir } from '../helpers/temp-dir.js';

const MISMATCH =
  /TOKEN_ENCRYPTION_KEY cannot decrypt the tokens stored in this database.*rotate-key/;

/** Every (table, column) of the schema, from the database's own catalogue. */
async function schemaColumns(db: Knex): Promise<Array<[string, string]>> {
  if (db.client.config.client === 'pg') {
    const r = (await db.raw(
      `select table_name, column_name from information_schema.columns
        where table_schema = current_schema() and data_type in ('text', 'character varying')`,
    )) as { rows: Array<{ table_name: string; column_name: string }> };
    return r.rows.map((x) => [x.table_name, x.column_name]);
  }
  const tables = (await db.raw(
    `select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`,
  )) as Array<{ name: string }>;
  const out: Array<[string, string]> = [];
  for (const { name } of tables) {
    const cols = (await db.raw(`pragma table_info("${name}")`)) as Array<{ name: string }>;
    for (const c of cols) out.push([name, c.name]);
  }
  return out;
}

async function deliver(url: string, body: string): Promise<number> {
  const res = await fetch(`${url}/b24/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  return res.status;
}

describe('the token encryption key', () => {
  let h: InstallHarness;
  let portal: Awaited<ReturnType<typeof installPortal>>['portal'];
  const oldKey = () => h.t.deps.config.tokenEncryptionKey.toString('hex');
  const appEnv = () => ({ ...spawnedAppEnv(h, h.t.dir), ...h.t.dbEnv });

  beforeAll(async () => {
    h = await startInstallHarness();
    ({ portal } = await installPortal(h));
    // An admin's open session keeps the frame's tokens sealed with the key (admin-check.ts).
    await openFrameSession(h.appUrl, portal);
    await h.stopApp();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('lists every encrypted value of the schema for rotation', async () => {
    const listed = new Set(
      ENCRYPTED_COLUMNS.flatMap((s) => s.columns.map((c) => `${s.table}.${c}`)),
    );
    const found = new Set<string>();
    for (const [table, column] of await schemaColumns(h.t.deps.db)) {
      // The value itself, or a JSON document with sealed values inside (as rotate-key finds
      // them): a session's JSON was missed when only values starting "v1." were looked at.
      const rows = (await h.t.deps
        .db(table)
        .where(column, 'like', '%v1.%')
        .limit(100)
        .pluck(column)) as unknown[];
      if (rows.some((v) => typeof v === 'string' && recrypt(v, (x) => x).count > 0)) {
        found.add(`${table}.${column}`);
      }
    }
    // Control: the install stored its tokens encrypted, and the scan saw them.
    expect(found.has('portals.access_token_enc')).toBe(true);
    expect(found.has('portals.refresh_token_enc')).toBe(true);
    expect(found.has('sessions.sess')).toBe(true);
    // The key check is encrypted too, and rotate-key re-seals it itself.
    found.delete('key_check.value_enc');
    for (const f of found) expect(listed).toContain(f);
  });

  it('refuses to start with another key, saying what to do (server and CLI)', async () => {
    const other = randomBytes(32).toString('hex');
    await expect(spawnServer({ ...appEnv(), TOKEN_ENCRYPTION_KEY: other })).rejects.toThrow(
      MISMATCH,
    );
    const cli = await runCliIn(h.t, ['portals'], { TOKEN_ENCRYPTION_KEY: other });
    expect(cli.code).toBe(1);
    expect(cli.err).toMatch(MISMATCH);
    // Control: the right key starts.
    const ok = await spawnServer(appEnv());
    expect((await fetch(`${ok.url}/healthz`)).status).toBe(200);
    expect(await ok.stop()).toBe(0);
  });

  it('rotate-key re-encrypts every secret; the new key starts and deliveries still verify', async () => {
    const before = await h.t.deps.db('portals').where({ member_id: portal.memberId }).first();
    const accessToken = h.t.deps.box.decrypt(before.access_token_enc);
    const newKey = randomBytes(32).toString('hex');
    const rotated = await runCliIn(h.t, ['rotate-key', '--json'], {
      NEW_TOKEN_ENCRYPTION_KEY: newKey,
    });
    expect(rotated.err).toBe('');
    expect(rotated.code).toBe(0);
    const report = JSON.parse(rotated.out) as { rotated: number; columns: Record<string, number> };
    expect(report.columns['portals.access_token_enc']).toBe(1);
    expect(report.rotated).toBeGreaterThanOrEqual(2);

    // An open session's sealed frame token too: its admin stays an admin after the rotation.
    expect(report.columns['sessions.sess']).toBeGreaterThanOrEqual(1);
    const after = await h.t.deps.db('portals').where({ member_id: portal.memberId }).first();
    expect(after.access_token_enc).not.toBe(before.access_token_enc);
    expect(createSecretBox(Buffer.from(newKey, 'hex')).decrypt(after.access_token_enc)).toBe(
      accessToken,
    );

    // The old key is refused now; the new one serves, and the stored application-token
    // digest still verifies a delivery (401 would mean the digests were lost).
    await expect(spawnServer({ ...appEnv(), TOKEN_ENCRYPTION_KEY: oldKey() })).rejects.toThrow(
      MISMATCH,
    );
    const server = await spawnServer({ ...appEnv(), TOKEN_ENCRYPTION_KEY: newKey });
    try {
      const p = {
        memberId: portal.memberId,
        domain: portal.domain,
        applicationToken: portal.applicationToken,
      };
      expect(await deliver(server.url, eventBody({ portal: p, id: 7 }))).toBe(200);
      // Control: a wrong application token is still refused.
      expect(
        await deliver(server.url, eventBody({ portal: p, id: 8, applicationToken: 'forged' })),
      ).toBe(401);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

describe('rotate-key with the key in DATA_DIR/secrets.json', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('generates a new key into secrets.json; the app starts with it', async () => {
    const dataDir = path.join(tmp.dir, 'data');
    const first = await spawnServer({ DATA_DIR: dataDir });
    expect(await first.stop()).toBe(0);
    const file = path.join(dataDir, 'secrets.json');
    const before = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
    let out = '';
    let err = '';
    const code = await runCli(
      ['rotate-key'],
      { DATA_DIR: dataDir },
      {
        out: (s) => (out += s),
        err: (s) => (err += s),
      },
    );
    expect({ code, err }).toEqual({ code: 0, err: '' });
    expect(out).toMatch(/re-encrypted 0 values/);
    const after = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
    expect(after.sessionSecret).toBe(before.sessionSecret);
    expect(after.tokenEncryptionKey).not.toBe(before.tokenEncryptionKey);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dataDir).filter((f) => f.includes('rotating'))).toEqual([]);
    const again = await spawnServer({ DATA_DIR: dataDir });
    const code2 = await again.stop();
    expect({ code2, err: again.stderr().slice(-3000) }).toEqual({
      code2: 0,
      err: expect.anything(),
    });
    await expect(
      spawnServer({ DATA_DIR: dataDir, TOKEN_ENCRYPTION_KEY: before.tokenEncryptionKey! }),
    ).rejects.toThrow(MISMATCH);
  });
});

describe('rotate-key beside a running server', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('is refused even with --force while the server runs; --force then passes its heartbeat', async () => {
    // --force is for a crash, whose heartbeat looks alive for two minutes; it had skipped the
    // server's own lock too, and the running server failed every event after the rotation.
    const dataDir = path.join(tmp.dir, 'data');
    const server = await spawnServer({ DATA_DIR: dataDir });
    const file = path.join(dataDir, 'secrets.json');
    const before = fs.readFileSync(file, 'utf8');
    const rotate = async () => {
      let err = '';
      const code = await runCli(
        ['rotate-key', '--force'],
        { DATA_DIR: dataDir },
        { out: () => {}, err: (s) => (err += s) },
      );
      return { code, err };
    };
    try {
      expect(await rotate()).toEqual({
        code: 1,
        err: expect.stringContaining('a b24hooks server is running on this database: stop it'),
      });
      expect(fs.readFileSync(file, 'utf8')).toBe(before);
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    // Control: stopped, the same command rotates.
    expect((await rotate()).code).toBe(0);
    expect(fs.readFileSync(file, 'utf8')).not.toBe(before);
  });
});

describe('rotate-key with a --new-key-file it cannot read', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());
  const rotateWith = async (dataDir: string, file: string) => {
    let out = '';
    let err = '';
    const code = await runCli(
      ['rotate-key', '--new-key-file', file, '--json'],
      { DATA_DIR: dataDir },
      { out: (s) => (out += s), err: (s) => (err += s) },
    );
    return { code, out, err };
  };
  /** A data dir as the server leaves it: the database and its key. */
  const dataDirAt = async (name: string) => {
    const dataDir = path.join(tmp.dir, name);
    const quiet = { out: () => undefined, err: () => undefined };
    expect(await runCli(['migrate'], { DATA_DIR: dataDir }, quiet)).toBe(0);
    return dataDir;
  };

  /** The command line is right; the file is not there: a failure (1), not bad usage (2). */
  it('fails with exit 1 and one line naming the file, and keeps the key', async () => {
    const dataDir = await dataDirAt('data');
    const before = ensureSecrets(dataDir, {});
    const missing = path.join(tmp.dir, 'no-such-key');
    const { code, out, err } = await rotateWith(dataDir, missing);
    expect({ code, out }).toEqual({ code: 1, out: '' });
    expect(err).toBe(`b24hooks rotate-key: --new-key-file: cannot read ${missing}: ENOENT\n`);
    expect(ensureSecrets(dataDir, {})).toEqual(before);
  });

  it('fails with exit 1 when the file holds no key, without printing what it holds', async () => {
    const dataDir = await dataDirAt('data-bad');
    const before = ensureSecrets(dataDir, {});
    const bad = path.join(tmp.dir, 'not-a-key');
    fs.writeFileSync(bad, 'correct horse battery staple\n');
    const { code, out, err } = await rotateWith(dataDir, bad);
    expect({ code, out }).toEqual({ code: 1, out: '' });
    expect(err).toBe(
      `b24hooks rotate-key: --new-key-file: ${bad}: the new key must be 32 bytes as 64 hex characters or base64\n`,
    );
    expect(err).not.toContain('horse');
    expect(ensureSecrets(dataDir, {})).toEqual(before);
  });
});

describe("a rotate-key stopped before its new secrets.json took the old one's place", () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('is finished by the next start; a staged key the database never took is left alone', async () => {
    const dataDir = path.join(tmp.dir, 'data');
    const file = path.join(dataDir, 'secrets.json');
    const staged = `${file}.rotating`;
    const cli = async (...args: string[]) => {
      let err = '';
      const log = createCollectingLogger('warn');
      const code = await runCli(
        args,
        { DATA_DIR: dataDir },
        { out: () => undefined, err: (s) => (err += s) },
        { logger: log.logger },
      );
      return { code, err: err + log.text() };
    };
    const keyIn = (f: string) =>
      (JSON.parse(fs.readFileSync(f, 'utf8')) as { tokenEncryptionKey: string }).tokenEncryptionKey;
    expect((await cli('migrate')).code).toBe(0); // secrets.json and the database
    expect((await cli('status', '--json')).code).toBe(0); // the key check
    const before = fs.readFileSync(file, 'utf8');
    expect((await cli('rotate-key')).code).toBe(0);
    const rotated = fs.readFileSync(file, 'utf8');
    // The crash: the database committed to the new key, the rename never happened.
    fs.writeFileSync(staged, rotated, { mode: 0o600 });
    fs.writeFileSync(file, before, { mode: 0o600 });

    // Control: without the staged file the start refuses, as it must.
    fs.renameSync(staged, `${staged}.aside`);
    const refused = await cli('status', '--json');
    expect(refused.code).not.toBe(0);
    expect(refused.err).toMatch(MISMATCH);
    fs.renameSync(`${staged}.aside`, staged);

    const started = await cli('status', '--json');
    expect(started.code).toBe(0);
    expect(started.err).toMatch(/finished a key rotation/);
    const newKey = (JSON.parse(rotated) as { tokenEncryptionKey: string }).tokenEncryptionKey;
    expect(keyIn(file)).toBe(newKey);
    expect(fs.existsSync(staged)).toBe(false);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect((await cli('status', '--json')).err).not.toMatch(/finished a key rotation/);

    // A rotation that failed before its commit leaves a key the database never took.
    fs.writeFileSync(
      staged,
      JSON.stringify({
        ...JSON.parse(rotated),
        tokenEncryptionKey: randomBytes(32).toString('hex'),
      }),
      { mode: 0o600 },
    );
    expect((await cli('status', '--json')).code).toBe(0);
    expect(keyIn(file)).toBe(newKey);
    expect(fs.existsSync(staged)).toBe(true);
  });
  it('lets rotate-key end well when a starting server has already finished its rename', () => {
    const dataDir = path.join(tmp.dir, 'raced');
    const file = path.join(dataDir, 'secrets.json');
    ensureSecrets(dataDir, {});
    const newKey = randomBytes(32);
    const next = {
      ...JSON.parse(fs.readFileSync(file, 'utf8')),
      tokenEncryptionKey: newKey.toString('hex'),
    };
    // The server renamed the staged file first: secrets.json holds the new key, nothing staged.
    fs.writeFileSync(file, JSON.stringify(next), { mode: 0o600 });
    expect(() => promoteStagedSecrets(dataDir, newKey)).not.toThrow();
    // Control: with another key in secrets.json, the missing staged file is an error.
    expect(() => promoteStagedSecrets(dataDir, randomBytes(32))).toThrow(/ENOENT/);
  });
});

describe('rotation of a listed column', () => {
  it('walks a composite key in batches and re-seals values inside JSON documents', async () => {
    const t = await createTestDeps();
    try {
      const { db, box } = t.deps;
      const oldKey = t.deps.config.tokenEncryptionKey;
      const rows = Array.from({ length: 1203 }, (_, i) => ({
        scope: `p${i % 3}`,
        key: `secret-${String(i).padStart(4, '0')}`,
        value: JSON.stringify({
          token: box.encrypt(`s-${i}`),
          nested: [{ pass: box.encrypt('x') }],
          n: i,
        }),
        updated_at: 1,
      }));
      for (let i = 0; i < rows.length; i += 200)
        await db('settings').insert(rows.slice(i, i + 200));
      await db('settings').insert({
        scope: 'p0',
        key: 'plain',
        value: '{"a":"v1-not-sealed"}',
        updated_at: 1,
      });
      const newKey = randomBytes(32);
      const result = await rotateKey(db, oldKey, newKey, Date.now(), [
        { table: 'settings', key: ['scope', 'key'], columns: ['value'] },
      ]);
      expect(result.total).toBe(2 * rows.length);
      const to = createSecretBox(newKey);
      const stored = await db('settings').where('key', 'like', 'secret-%').orderBy('key');
      expect(stored).toHaveLength(rows.length);
      for (const r of stored) {
        const v = JSON.parse(r.value) as {
          token: string;
          nested: Array<{ pass: string }>;
          n: number;
        };
        expect(to.decrypt(v.token)).toBe(`s-${v.n}`);
        expect(to.decrypt(v.nested[0]!.pass)).toBe('x');
      }
      const plain = await db('settings').where({ scope: 'p0', key: 'plain' }).first();
      expect(plain.value).toBe('{"a":"v1-not-sealed"}');
    } finally {
      await t.close();
    }
  });
  it('leaves plain text that merely starts with "v1." alone (a rule body, an address)', async () => {
    const t = await createTestDeps();
    try {
      const { db, box } = t.deps;
      const oldKey = t.deps.config.tokenEncryptionKey;
      const rules = {
        rules: [
          {
            name: 'Versioned API',
            on: ['ONCRMDEALUPDATE'],
            actions: [
              {
                type: 'http',
                method: 'POST',
                url: 'https://erp.example/api',
                headers: { authorization: { $enc: box.encrypt('Bearer s3cret') } },
                body: { api: 'v1.2', note: 'v1.' },
              },
            ],
          },
        ],
      };
      await db('settings').insert([
        { scope: 'p1', key: 'rules', value: JSON.stringify(rules), updated_at: 1 },
        { scope: 'p1', key: 'alert_email', value: '"v1.ops@example.com"', updated_at: 1 },
      ]);
      const newKey = randomBytes(32);
      const result = await rotateKey(db, oldKey, newKey, Date.now(), [
        { table: 'settings', key: ['scope', 'key'], columns: ['value'] },
      ]);
      expect(result.total).toBe(1);
      const stored = JSON.parse(
        (await db('settings').where({ scope: 'p1', key: 'rules' }).first()).value,
      ) as typeof rules;
      const step = stored.rules[0]!.actions[0]!;
      expect(step.body).toEqual({ api: 'v1.2', note: 'v1.' });
      expect(createSecretBox(newKey).decrypt(step.headers.authorization.$enc)).toBe(
        'Bearer s3cret',
      );
      expect((await db('settings').where({ scope: 'p1', key: 'alert_email' }).first()).value).toBe(
        '"v1.ops@example.com"',
      );
    } finally {
      await t.close();
    }
  });
});
