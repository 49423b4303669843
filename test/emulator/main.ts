/**
 * Standalone emulator: one portal with a few sample deals, for poking at by hand or for the
 * demo. Run `npx tsc -p . && node dist/test/emulator/main.js`.
 *
 * Environment (all optional): EMULATOR_PORT (the portal's port; the OAuth server takes a
 * free one), EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EMULATOR_APP_URL (the app's base
 * URL, framed by the portal pages; install path /install, app path /app).
 */
import { startEmulator } from './bitrix-emulator.js';

async function main(): Promise<void> {
  const env = process.env;
  const clientId = env['EMULATOR_CLIENT_ID'] ?? 'local.emulator';
  const clientSecret = env['EMULATOR_CLIENT_SECRET'] ?? 'emulator-secret';
  const port = env['EMULATOR_PORT'] ? Number(env['EMULATOR_PORT']) : 0;
  const emu = await startEmulator({ clientId, clientSecret });
  const portal = await emu.addPortal({ port });
  const appUrl = env['EMULATOR_APP_URL'];
  if (appUrl) portal.setApp({ appUrl, appPath: '/app', installPath: '/install' });

  const contact = await portal.addContact({
    NAME: 'Ada',
    LAST_NAME: 'Lovelace',
    PHONE: [{ VALUE: '+15550100', VALUE_TYPE: 'WORK' }],
    EMAIL: [{ VALUE: 'ada@example.test', VALUE_TYPE: 'WORK' }],
  });
  await portal.addDeal({
    TITLE: 'Website redesign',
    OPPORTUNITY: 12000,
    CURRENCY_ID: 'USD',
    CONTACT_ID: contact.id,
  });
  await portal.addDeal({
    TITLE: 'Annual support',
    OPPORTUNITY: 4800,
    CURRENCY_ID: 'USD',
    STAGE_ID: 'PREPARATION',
  });
  await portal.addDeal({
    TITLE: 'Hardware order',
    OPPORTUNITY: 950.5,
    CURRENCY_ID: 'EUR',
    STAGE_ID: 'WON',
  });
  const admin = portal.issueUserAuth(1);
  const hook = portal.createInboundWebhook(1);

  const lines = [
    `Bitrix24 emulator running`,
    `  portal page      ${portal.url}/`,
    `  app page         ${portal.url}/app${appUrl ? '' : '   (set EMULATOR_APP_URL to frame an app)'}`,
    `  domain           ${portal.domain}`,
    `  member_id        ${portal.memberId}`,
    `  client endpoint  ${portal.clientEndpoint}`,
    `  OAuth server     ${emu.oauthUrl}   (server endpoint ${emu.serverEndpoint})`,
    `  client id/secret ${clientId} / ${clientSecret}`,
    `  app token        ${portal.applicationToken}`,
    `  admin token      ${admin.accessToken}   (refresh ${admin.refreshToken})`,
    `  inbound webhook  ${hook}`,
    `Press Ctrl+C to stop.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  const stop = (): void => {
    emu.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`emulator failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
