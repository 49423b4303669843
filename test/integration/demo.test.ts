import fs from 'node:fs';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { openDb } from '../../db/connect.js';
import { projectRoot } from '../../server/lib/project-root.js';
import { seedDealEvent } from '../helpers/seed-db.js';
import { tempDir } from '../helpers/temp-dir.js';

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

describe('npm run demo', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  /**
   * Runs the demo until its first SMS goes out (or 20 s); what it printed. Each test may take
   * longer than jest's 30 s on a starved machine: the wait, then a server that starts and
   * stops slowly (seen with two busy loops on the two cores, on the code of 2026-12-04 too).
   */
  async function runDemo(
    port: number,
    dataDir: string,
    check?: (err: string) => Promise<void>,
    extra: Record<string, string> = {},
  ) {
    const proc = spawn(
      process.execPath,
      [path.join(projectRoot(), 'dist', 'test', 'demo', 'main.js')],
      {
        env: {
          PATH: process.env.PATH ?? '',
          PORT: String(port),
          DATA_DIR: dataDir,
          DEMO_INTERVAL_MS: '300',
          HOST: '127.0.0.1',
          ...extra,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    try {
      const deadline = Date.now() + 20_000;
      while (!/\[sms\] POST/.test(err) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      await check?.(err);
    } finally {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
    return err;
  }

  const dataDir = path.join(tmp.dir, 'demo');

  it('installs on the emulated portal, streams deals and runs the Paid-deal rule', async () => {
    const port = await freePort();
    const err = await runDemo(port, dataDir, async (err) => {
      const portalPage = /Open the emulated Bitrix24 portal: +(http:\/\/\S+)/.exec(err)?.[1];
      expect(portalPage).toBeDefined();
      const page = await fetch(portalPage!);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(`http://localhost:${port}`);
      // The calls made in the deals are linked to them, for their tabs.
      const db = openDb({ client: 'sqlite', filename: path.join(dataDir, 'b24hooks.sqlite') });
      try {
        let linked: unknown;
        for (const end = Date.now() + 15_000; !linked && Date.now() < end;) {
          linked = await db('event_owners')
            .join('events', 'events.id', 'event_owners.event_id')
            .where({ 'events.event': 'ONCRMACTIVITYADD', 'event_owners.owner_type': 'deal' })
            .first('event_owners.owner_id');
          if (!linked) await new Promise((r) => setTimeout(r, 200));
        }
        expect(linked).toBeDefined();
      } finally {
        await db.destroy();
      }
    });
    expect(err).toMatch(/Each deal also gets a call \(ONCRMACTIVITYADD\)/);
    expect(err).toMatch(/\[accounting\] POST \/api\/invoices/);
    expect(err).toMatch(/\[sms\] POST \/send .*Payment received for order/);
    // A mail server too: e-mail steps and alerts have somewhere to go.
    expect(err).toMatch(/mail \(SMTP\) 127\.0\.0\.1:\d+: e-mail steps and alerts show below/);
    // A new DATA_DIR holds the secrets: the owner's only, as npm start makes it.
    expect(fs.statSync(dataDir).mode & 0o777).toBe(0o700);
    const db = openDb({ client: 'sqlite', filename: path.join(dataDir, 'b24hooks.sqlite') });
    const processed = Number(
      (
        await db('events')
          .where({ status: 'processed', event: 'ONCRMDEALUPDATE' })
          .count({ n: '*' })
          .first()
      )?.n,
    );
    await db.destroy();
    expect(processed).toBeGreaterThan(0);
  }, 60_000);

  const openDemoDb = () =>
    openDb({ client: 'sqlite', filename: path.join(dataDir, 'b24hooks.sqlite') });
  /** The first run's portal, and an event of it left retrying when that run stopped. */
  let lastRun: { memberId: string; eventId: number } | undefined;

  it('run again on the same data, reaches this run’s stand-ins, not the last run’s', async () => {
    const db = openDemoDb();
    try {
      const [portal] = (await db('portals').where({ status: 'installed' }).select('member_id')) as {
        member_id: string;
      }[];
      expect(portal).toBeDefined();
      // Its next attempt hours away, against an emulator that went with the first run.
      const at = Date.now();
      const eventId = await seedDealEvent(db, portal!.member_id, {
        dealId: '1',
        status: 'received',
        lastError: 'Bitrix24 crm.deal.get: fetch failed',
        job: { status: 'pending', lastError: 'fetch failed', runAt: at + 6 * 3600_000 },
        at,
      });
      lastRun = { memberId: portal!.member_id, eventId };
    } finally {
      await db.destroy();
    }
    // The stand-ins listen on new ports each run; the stored map still named the old ones.
    // This run's portal is a Russian one (DEMO_LANG): installed in its language.
    const err = await runDemo(await freePort(), dataDir, undefined, { DEMO_LANG: 'ru' });
    expect(err).toMatch(/\[accounting\] POST \/api\/invoices/);
    expect(err).toMatch(/\[logistics\] POST \/api\/shipments/);
    expect(err).toMatch(/Earlier runs' emulated portals \(1\) are gone with their emulator/);
    // The banner names the pages' labels as a Russian portal shows them (a walk looked for
    // "Rules > New rule" on Russian pages).
    expect(err).toContain('Правила > Новое правило');
    expect(err).not.toContain('Rules > New rule');
    const langs = await (async () => {
      const db2 = openDemoDb();
      try {
        return ((await db2('portals').orderBy('id').select('lang')) as { lang: string }[]).map(
          (p) => p.lang,
        );
      } finally {
        await db2.destroy();
      }
    })();
    expect(langs).toEqual(['en', 'ru']);
  }, 60_000);

  it('leaves the last run’s portal uninstalled and its waiting event skipped, not retrying', async () => {
    expect(lastRun).toBeDefined();
    const db = openDemoDb();
    try {
      const old = await db('portals').where({ member_id: lastRun!.memberId }).first();
      expect(old).toMatchObject({ status: 'uninstalled', access_token_enc: null });
      const event = await db('events').where({ id: lastRun!.eventId }).first();
      expect(event).toMatchObject({ status: 'skipped', last_error: 'portal is not installed' });
      const waiting = await db('jobs')
        .where({ event_id: lastRun!.eventId })
        .whereIn('status', ['pending', 'running'])
        .count({ n: '*' })
        .first();
      expect(Number(waiting?.n)).toBe(0);
      // This run's portal is the one installed now.
      const installed = (await db('portals')
        .where({ status: 'installed' })
        .select('member_id')) as { member_id: string }[];
      expect(installed).toHaveLength(1);
      expect(installed[0]!.member_id).not.toBe(lastRun!.memberId);
    } finally {
      await db.destroy();
    }
  });

  it('holds its database as the server does: a second demo and rotate-key are refused', async () => {
    const run = (args: string[], env: Record<string, string>) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const p = spawn(process.execPath, args, {
          env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, ...env },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let err = '';
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        p.on('exit', (code) => resolve({ code, err }));
      });
    let second: { code: number | null; err: string } | undefined;
    let rotate: { code: number | null; err: string } | undefined;
    let tried: { code: number | null; err: string } | undefined;
    const before = fs.readFileSync(path.join(dataDir, 'secrets.json'), 'utf8');
    let envBefore = '';
    const err = await runDemo(await freePort(), dataDir, async () => {
      envBefore = fs.readFileSync(path.join(dataDir, 'demo.env'), 'utf8');
      second = await run([path.join(projectRoot(), 'dist', 'test', 'demo', 'main.js')], {
        PORT: String(await freePort()),
        HOST: '127.0.0.1',
      });
      rotate = await run(
        [path.join(projectRoot(), 'server', 'bin', 'b24hooks.js'), 'rotate-key'],
        {},
      );
      // The CLI with the demo's settings reaches its portal (without: "not in B24_PORTAL_HOSTS").
      const db = openDemoDb();
      const installed = (await db('portals').where({ status: 'installed' }).first('member_id')) as {
        member_id: string;
      };
      await db.destroy();
      tried = await run(
        [
          path.join(projectRoot(), 'server', 'bin', 'b24hooks.js'),
          'rules',
          'test',
          '--portal',
          installed.member_id,
          '--event',
          'ONCRMDEALUPDATE',
          '--id',
          '1',
        ],
        { ENV_FILE: path.join(dataDir, 'demo.env') },
      );
    });
    expect(err).toContain(`ENV_FILE=${path.join(dataDir, 'demo.env')} npx b24hooks status`);
    expect(tried?.err).not.toContain('B24_PORTAL_HOSTS');
    expect(tried?.code).toBe(0);
    // Control: the first demo ran (its SMS went out).
    expect(err).toMatch(/\[sms\] POST/);
    expect(second?.code).toBe(1);
    expect(second?.err).toMatch(/another b24hooks server is running on .*b24hooks\.sqlite/);
    expect(rotate?.code).toBe(1);
    expect(rotate?.err).toContain('a b24hooks server is running on this database: stop it first');
    expect(fs.readFileSync(path.join(dataDir, 'secrets.json'), 'utf8')).toBe(before);
    // The refused demo left the running one's CLI settings alone.
    expect(fs.readFileSync(path.join(dataDir, 'demo.env'), 'utf8')).toBe(envBefore);
  }, 90_000);
});
