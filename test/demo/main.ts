/**
 * `npm run demo`: the app, a local Bitrix24 portal emulator and a stream of CRM events, so a
 * newcomer sees install, the event log, the dashboard and actions working without a portal.
 * Honours PORT and DATA_DIR (default ./data/demo); the emulator and the stand-ins for
 * accounting, logistics, the SMS gateway and the mail server take free ports on 127.0.0.1. Each run installs a
 * new emulated portal; the earlier runs' portals on the same data are marked uninstalled at
 * start (previous-runs.ts), so their unfinished events end instead of retrying for ever.
 * DATABASE_URL runs it on PostgreSQL (demo.env then names it for the CLI).
 */
import { openInstanceLock } from '../../server/cluster/instance-lock.js';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { takeSqliteServerLock } from '../../server/cluster/sqlite-server-lock.js';
import { loadConfig } from '../../server/config.js';
import { createDeps } from '../../server/deps.js';
import { AppError } from '../../server/lib/errors.js';
import { projectRoot } from '../../server/lib/project-root.js';
import { appParts } from '../../server/routes/index.js';
import { createServices } from '../../server/services.js';
import { ensureSecrets } from '../../server/secrets.js';
import { buildListener, listen } from '../../server/start.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { getRuleMap, saveRuleMap } from '../../server/rules/map-store.js';
import { startEmulator } from '../emulator/bitrix-emulator.js';
import { startSmtpSink } from '../helpers/smtp-sink.js';
import { retirePreviousPortals } from './previous-runs.js';

/** A local stand-in for an external system: records what it got, answers like the real one. */
async function standIn(name: string, reply: (body: unknown) => unknown) {
  const received: unknown[] = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      let body: unknown = raw;
      try {
        body = JSON.parse(raw);
      } catch {
        /* keep text */
      }
      received.push(body);
      process.stderr.write(`  [${name}] ${req.method} ${req.url} ${raw.slice(0, 120)}\n`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply(body)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, server };
}

/** Variables of the demo's app that the CLI needs to reach this run's emulator and stand-ins. */
const CLI_KEYS = [
  'DATA_DIR',
  // The demo on PostgreSQL (DATABASE_URL set): the CLI must open the same database.
  'DATABASE_URL',
  'B24_CLIENT_ID',
  'B24_CLIENT_SECRET',
  'B24_PORTAL_HOSTS',
  'B24_OAUTH_SERVERS',
  'B24_EVENTS',
  'SMS_PROVIDER',
  'SMS_URL',
  'SMS_TOKEN',
  'ACTION_PRIVATE_HOSTS',
] as const;

/**
 * `DATA_DIR/demo.env`: the demo's settings for the CLI (`ENV_FILE=… npx b24hooks …`). Run
 * without them, the CLI could not reach the emulator ("not in B24_PORTAL_HOSTS"), and a
 * `replay --wait` ended the replayed events failed for good. Owner-only, as secrets.json is.
 */
function writeDemoEnv(dataDir: string, env: Record<string, string | undefined>): string {
  const file = path.join(dataDir, 'demo.env');
  const lines = CLI_KEYS.flatMap((k) => (env[k] === undefined ? [] : [`${k}=${env[k]}`]));
  fs.writeFileSync(
    file,
    `# Written by npm run demo for this run: ENV_FILE=${file} npx b24hooks <command>\n${lines.join('\n')}\n`,
    { mode: 0o600 },
  );
  fs.chmodSync(file, 0o600);
  return file;
}

async function main(): Promise<void> {
  const env = process.env;
  const port = Number(env.PORT?.trim() || 3000);
  const dataDir = path.resolve(env.DATA_DIR?.trim() || './data/demo');
  // Secrets and the database live here: the owner's only, as npm start makes it.
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const clientId = 'local.demo';
  const clientSecret = randomBytes(16).toString('hex');
  const emu = await startEmulator({ clientId, clientSecret });
  // DEMO_LANG=ru: a Russian portal, whose pages, alerts and builder the app shows in Russian.
  const ru = env.DEMO_LANG?.trim() === 'ru';
  const portal = await emu.addPortal({ lang: ru ? 'ru' : 'en' });
  let invoices = 0;
  const accounting = await standIn('accounting', () => ({ id: `INV-${1000 + ++invoices}` }));
  const logistics = await standIn('logistics', () => ({
    shipment: `SHP-${randomBytes(3).toString('hex')}`,
  }));
  const sms = await standIn('sms', () => ({ status: 'queued' }));
  // E-mail steps and e-mail alerts (a walk built "e-mail the accountant", the brief's own
  // example, and every won deal failed: the demo had no mail server).
  const mail = await startSmtpSink('demo', randomBytes(8).toString('hex'), (m) => {
    const subject = /^Subject: (.*)$/m.exec(m.raw)?.[1]?.trim() ?? '';
    process.stderr.write(`  [mail] to ${m.to.join(', ')}: ${subject.slice(0, 100)}\n`);
  });

  const appUrl = `http://localhost:${port}`;
  const demoEnv = {
    ...env,
    PORT: String(port),
    DATA_DIR: dataDir,
    APP_URL: appUrl,
    B24_CLIENT_ID: clientId,
    B24_CLIENT_SECRET: clientSecret,
    B24_PORTAL_HOSTS: '127.0.0.1:*',
    B24_OAUTH_SERVERS: emu.oauthUrl,
    B24_JS_SDK_URL: `${portal.url}/bx24.js`,
    SMS_PROVIDER: 'generic',
    SMS_URL: `${sms.url}/send`,
    SMS_TOKEN: 'demo-sms-token',
    SMTP_URL: env.SMTP_URL ?? mail.url,
    ALERT_EMAIL_FROM: env.ALERT_EMAIL_FROM ?? 'b24hooks demo <demo@b24hooks.example>',
    // The operator's address: the portal's alerts reach the mail stand-in until its admins
    // set their own on the Alerts page.
    ALERT_EMAIL_TO: env.ALERT_EMAIL_TO ?? 'ops@b24hooks.example',
    // The accounting and logistics stand-ins listen on loopback, which rule steps may not
    // reach unless the operator allows it.
    ACTION_PRIVATE_HOSTS: env.ACTION_PRIVATE_HOSTS ?? '127.0.0.1',
    // Calls made in the deals too: the deal's tab lists them beside its own events.
    B24_EVENTS: env.B24_EVENTS ?? 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMACTIVITYADD',
    RETRY_BASE_SECONDS: env.RETRY_BASE_SECONDS ?? '2',
    LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
  };
  const config = loadConfig(demoEnv, ensureSecrets(dataDir, demoEnv));
  // As `npm start` does: a second demo or server on this database is refused, and the CLI's
  // `rotate-key` sees a server running (a second demo on one DATA_DIR retired the first one's
  // portal; a key rotated under a running demo left every event unreadable).
  const serverLock =
    config.database.client === 'sqlite'
      ? takeSqliteServerLock(config.database.filename)
      : undefined;
  // Only once the data is this run's: a refused second demo must not rewrite the first one's.
  const envFile = writeDemoEnv(dataDir, demoEnv);
  const deps = await createDeps(config);
  // Before the worker starts: the last runs' portals are gone with their emulator.
  const retired = await retirePreviousPortals(deps);
  // On PostgreSQL the presence lock a server holds: `rotate-key` sees the demo running.
  const instanceLock =
    config.database.client === 'pg'
      ? await openInstanceLock(config.database.connectionString, deps.logger)
      : undefined;
  const services = createServices(deps, { instanceLock });
  services.worker.start();
  services.alerts.start();
  services.offline.start();
  services.retention.start();
  // The heartbeat (and a sweep after a gap), as the server writes it.
  void services.recovery.start();
  const running = await listen(
    deps,
    buildListener(deps, appParts(deps, services)),
    port,
    env.HOST?.trim() || '0.0.0.0',
  );

  // The sample "Paid deal" map, pointed at the local stand-ins. A map stored by an earlier
  // run is kept, edits and all, but its steps to that run's stand-ins (a loopback port that is
  // gone now) are pointed at this run's.
  const stored = await getRuleMap(deps.db);
  const storedText = stored && JSON.stringify(stored);
  const raw = storedText
    ? storedText
        .replace(/http:\/\/127\.0\.0\.1:\d+(?=\/api\/invoices)/g, accounting.url)
        .replace(/http:\/\/127\.0\.0\.1:\d+(?=\/api\/shipments)/g, logistics.url)
    : fs
        .readFileSync(
          path.join(projectRoot(), 'server', 'rules', 'samples', 'paid-deal.json'),
          'utf8',
        )
        .replace('https://accounting.example', accounting.url)
        .replace('https://logistics.example', logistics.url);
  if (raw !== storedText) {
    const v = validateEventMap(JSON.parse(raw));
    if (v.ok) await saveRuleMap(deps.db, undefined, v.map, deps.clock.now());
  }

  // Install the way Bitrix24 does: the installer POST into the frame, then BX24.installFinish().
  portal.setApp({
    appUrl,
    appPath: deps.manifest.handlers.app,
    installPath: deps.manifest.handlers.install,
  });
  const installed = await portal.install();
  if (installed.status !== 200) throw new Error(`install answered ${installed.status}`);
  await portal.finishInstall();

  process.stderr.write(
    [
      '',
      `b24hooks demo is running (app on ${running.url}, data in ${dataDir})`,
      '',
      `  Open the emulated Bitrix24 portal:  ${portal.url}/app`,
      `  A deal card with the Webhooks tab:  ${portal.url}/crm/deal/details/1/`,
      '  (move a deal to "Deal successful" there to run the Paid deal rule yourself)',
      '',
      `  Stand-ins: accounting ${accounting.url}, logistics ${logistics.url}, SMS ${sms.url},`,
      `  mail (SMTP) 127.0.0.1:${mail.port}: e-mail steps and alerts show below as [mail] lines`,
      `  The CLI on this demo (its emulator and stand-ins allowed, as in the app):`,
      `    ENV_FILE=${envFile} npx b24hooks status`,
      ...(retired.length
        ? [
            `  Earlier runs' emulated portals (${retired.length}) are gone with their emulator: marked`,
            '  uninstalled; their unfinished events end skipped ("portal is not installed").',
          ]
        : []),
      '  A stream of deal events runs every few seconds; every third deal is paid (WON),',
      '  which runs the "Paid deal" rule: invoice, shipment, SMS and a timeline comment.',
      "  Each deal also gets a call (ONCRMACTIVITYADD): its Webhooks tab lists the call's event",
      ...(ru
        ? [
            '  as "Дело <id>" beside the deal\'s own. A rule on it: Правила > Новое правило, event',
            '  «Создано дело», condition «Поле «Тип» — одно из: Звонок» (the pages are in Russian).',
          ]
        : [
            '  as "Activity <id>" beside the deal\'s own. A rule on it: Rules > New rule, event',
            '  "An activity was created", condition "Type is one of Call".',
          ]),
      '  Press Ctrl+C to stop.',
      '',
    ].join('\n'),
  );

  const names = ['Website redesign', 'Annual support', 'Hardware order', 'Consulting', 'Training'];
  let n = 0;
  const contact = await portal.addContact({
    NAME: 'Ada',
    LAST_NAME: 'Lovelace',
    PHONE: [{ VALUE: '+15550100', VALUE_TYPE: 'WORK' }],
  });
  const timer = setInterval(
    () => {
      void (async () => {
        n++;
        const title = names[n % names.length]!;
        const deal = await portal.addDeal({
          TITLE: `${title} #${n}`,
          STAGE_ID: 'NEW',
          OPPORTUNITY: String(100 * n),
          CURRENCY_ID: 'USD',
          CONTACT_ID: contact.id,
        });
        setTimeout(
          () => void portal.updateDeal(deal.id, { STAGE_ID: 'PREPARATION' }).catch(() => undefined),
          1500,
        );
        // A call in the deal (CCrmActivityType 2, owner type 2 a deal).
        setTimeout(
          () =>
            void portal
              .addActivity({
                OWNER_TYPE_ID: '2',
                OWNER_ID: deal.id,
                TYPE_ID: '2',
                SUBJECT: `Call about ${title}`,
                DIRECTION: '2',
                COMPLETED: 'Y',
              })
              .catch(() => undefined),
          1000,
        );
        if (n % 3 === 0)
          setTimeout(
            () => void portal.updateDeal(deal.id, { STAGE_ID: 'WON' }).catch(() => undefined),
            3500,
          );
      })().catch((e: unknown) => process.stderr.write(`demo stream: ${(e as Error).message}\n`));
    },
    Number(env.DEMO_INTERVAL_MS ?? 4000),
  );

  const stop = async () => {
    clearInterval(timer);
    await running.close();
    await services.close(5000);
    await instanceLock?.close();
    await deps.close();
    serverLock?.release();
    await emu.close();
    for (const s of [accounting, logistics, sms]) s.server.close();
    await mail.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((e: unknown) => {
  // A configuration refused (another server on the data): its message says what to do.
  const told = e instanceof AppError && e.code === 'CONFIG';
  process.stderr.write(`b24hooks demo: ${told ? e.message : ((e as Error)?.stack ?? String(e))}\n`);
  process.exit(1);
});
