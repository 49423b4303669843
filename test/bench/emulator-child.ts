/**
 * The emulator's process for `emulator-process.ts`: the Bitrix24 emulator (client id and
 * secret from EMULATOR_CLIENT_ID / EMULATOR_CLIENT_SECRET), one portal and a no-op action
 * receiver, answering the parent's requests over IPC. Exits when the parent disconnects.
 */
import { startEmulator } from '../emulator/bitrix-emulator.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { startHttpSink } from '../helpers/http-sink.js';
import type { EmulatorMessage, EmulatorRequest } from './emulator-process.js';

const send = (m: EmulatorMessage) => process.send?.(m);
const emu = await startEmulator({
  clientId: process.env.EMULATOR_CLIENT_ID ?? '',
  clientSecret: process.env.EMULATOR_CLIENT_SECRET ?? '',
});
const sink = await startHttpSink();
let portal: EmulatedPortal | undefined;
let actions = 0;

async function answer(req: EmulatorRequest): Promise<unknown> {
  if (req.op === 'addPortal') {
    portal = await emu.addPortal();
    portal.setApp(req.app);
    return null;
  }
  if (req.op === 'counters') {
    actions += sink.requests.length;
    sink.requests.length = 0;
    // The portal's records of calls and deliveries are not needed: dropped, to stay small.
    if (portal) {
      (portal.calls as unknown[]).length = 0;
      (portal.deliveries as unknown[]).length = 0;
    }
    return { tokens: emu.issuedTokens().length, actions };
  }
  if (!portal) throw new Error('no portal yet');
  const fn = (portal as unknown as Record<string, unknown>)[req.method];
  if (typeof fn !== 'function') throw new Error(`the portal has no method ${req.method}`);
  return (await (fn as (...a: unknown[]) => unknown).apply(portal, req.args)) ?? null;
}

process.on('message', (req: EmulatorRequest) => {
  answer(req).then(
    (value) => send({ type: 'reply', id: req.id, value }),
    (err: unknown) =>
      send({ type: 'reply', id: req.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.once('disconnect', () => {
  void Promise.all([emu.close(), sink.close()]).finally(() => process.exit(0));
});
send({ type: 'ready', oauthUrl: emu.oauthUrl, sinkUrl: sink.url });
