import v8 from 'node:v8';
import vm from 'node:vm';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { everyUpdateMap } from '../helpers/burst.js';
import { installPortal, startApp } from '../helpers/install-harness.js';
import { startEmulatorProcess } from './emulator-process.js';
import { fmt } from './util.js';

interface Sample {
  minute: number;
  events: number;
  heapMb: number;
  handles: number;
  /** Tokens the emulator (in its own process) keeps: two per delivery, never dropped. */
  emulatorTokens: number;
}

/**
 * `npm run bench -- soak [--minutes 60] [--rate 20]`: steady deal updates against the
 * emulated portal for the given time, with the worker, the alert monitor (every 5 s) and the
 * heartbeat running, and a no-op HTTP action on every update. The emulator and the action's
 * receiver run in their own process, so this process's heap and handles are the app's. Each minute it prints the heap
 * after a full GC, the active handles and the warnings Node printed: a listener added per
 * call to a shared AbortSignal or emitter shows as a MaxListenersExceededWarning (a control at
 * the start proves such a warning is caught). The
 * verdict compares the second half's heap with the first's: flat means the growth stays
 * under 10 % (a leak of one closure per event grows without end).
 */
export async function soakBench(opts: {
  minutes: number;
  rate: number;
  /** Writes a heap snapshot after the first minute and at the end, to compare. */
  snapshots?: string;
}): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const warnings: string[] = [];
  process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));
  // Control: eleven listeners on one signal must be reported, or a zero below proves nothing.
  const control = new AbortController();
  for (let i = 0; i < 11; i++) control.signal.addEventListener('abort', () => {});
  await new Promise((r) => setImmediate(r));
  if (!warnings.some((w) => w.startsWith('MaxListenersExceededWarning'))) {
    throw new Error('the listener-leak control raised no MaxListenersExceededWarning');
  }
  process.stdout.write(`control: ${warnings[0]}\n`);
  warnings.length = 0;

  const emu = await startEmulatorProcess();
  const app = await startApp(emu.oauthUrl);
  const { portal, settle } = await installPortal({
    services: app.services,
    addPortal: () =>
      emu.addPortal({ appUrl: app.appUrl, installPath: app.t.deps.manifest.handlers.install }),
  });
  const map = everyUpdateMap({ accounting: emu.sinkUrl });
  await saveRuleMap(app.t.deps.db, undefined, map, app.t.clock.now());
  const deals: string[] = [];
  for (let i = 0; i < 50; i++) {
    deals.push((await portal.addDeal({ TITLE: `Soak ${i}`, STAGE_ID: 'NEW' })).id);
  }
  await settle();
  const services = app.services;
  services.worker.start();
  services.alerts.start(5000);
  await services.recovery.start();

  const samples: Sample[] = [];
  let sent = 0;
  const started = Date.now();
  const end = started + opts.minutes * 60_000;
  let actions = 0;
  let logLines = 0;
  const sample = async (minute: number) => {
    const counters = await emu.counters();
    actions = counters.actions;
    // The test logger keeps the app's log lines for assertions: counted and dropped.
    logLines += app.t.logs.lines.length;
    app.t.logs.lines.length = 0;
    gc();
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
    const x: Sample = {
      minute,
      events: sent,
      heapMb: process.memoryUsage().heapUsed / 1048576,
      handles: handles.length,
      emulatorTokens: counters.tokens,
    };
    samples.push(x);
    if (opts.snapshots && (minute === 1 || Date.now() >= end)) {
      process.stdout.write(
        `heap snapshot: ${v8.writeHeapSnapshot(`${opts.snapshots}/soak-${minute}.heapsnapshot`)}\n`,
      );
    }
    process.stdout.write(
      `minute ${String(minute).padStart(3)}  events ${fmt(x.events).padStart(8)}  heap ${x.heapMb.toFixed(1)} MB  handles ${x.handles}  emulator tokens ${fmt(x.emulatorTokens)}  warnings ${warnings.length}\n`,
    );
  };

  await sample(0);
  let nextSample = started + 60_000;
  const interval = 1000 / opts.rate;
  while (Date.now() < end) {
    const tick = Date.now();
    await portal.updateDeal(deals[sent % deals.length]!, { TITLE: `Soak ${sent}` });
    sent++;
    if (Date.now() >= nextSample) {
      await sample(Math.round((Date.now() - started) / 60_000));
      nextSample += 60_000;
    }
    const wait = interval - (Date.now() - tick);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await settle();
  await sample(Math.round((Date.now() - started) / 60_000));
  // A running loop holds the last jobs (and, by entity order, the ones behind them) where
  // drain() does not see them: stopped, it finishes them and drain() runs the rest.
  await services.worker.stop();
  await settle();
  actions = (await emu.counters()).actions;
  // Every event the app stored, by status and name (the install's and the deals' adds too).
  const byStatus = (await app.t.deps
    .db('events')
    .select('status', 'event')
    .count({ n: '*' })
    .groupBy('status', 'event')) as { status: string; event: string; n: number | string }[];
  const done = byStatus.reduce((n, r) => n + (r.status === 'processed' ? Number(r.n) : 0), 0);
  await emu.close();
  await app.close();

  const half = Math.floor(samples.length / 2);
  const avg = (xs: Sample[]) => xs.reduce((n, x) => n + x.heapMb, 0) / Math.max(1, xs.length);
  const first = avg(samples.slice(1, half + 1));
  const second = avg(samples.slice(half + 1));
  const growth = first > 0 ? (second - first) / first : 0;
  process.stdout.write(
    `\n${fmt(sent)} updates sent in ${opts.minutes} min, ${fmt(done)} events processed, ${fmt(actions)} actions sent, ${fmt(logLines)} log lines\n` +
      `events stored: ${byStatus.map((r) => `${r.event} ${r.status} ${fmt(Number(r.n))}`).join(', ')}\n` +
      `heap and handles are the app's alone: the emulator runs in its own process\n` +
      `heap after GC: first half ${first.toFixed(1)} MB, second half ${second.toFixed(1)} MB (${(growth * 100).toFixed(1)} %, target < 10 % ${growth < 0.1 ? 'ok' : 'MISSED'})\n` +
      `handles first ${samples[0]?.handles}, last ${samples.at(-1)?.handles}\n` +
      `warnings: ${warnings.length}${warnings.length ? `\n  ${[...new Set(warnings)].join('\n  ')}` : ''} (target 0 ${warnings.length === 0 ? 'ok' : 'MISSED'})\n`,
  );
}
