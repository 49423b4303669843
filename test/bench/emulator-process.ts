import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import type { AppSettings } from '../emulator/types.js';
import { CLIENT_ID, CLIENT_SECRET } from '../helpers/install-harness.js';
import { benchDir } from './util.js';

/** A portal's methods, called in the emulator's process: every one answers a promise. */
export type RemotePortal = {
  [
    K in keyof EmulatedPortal as EmulatedPortal[K] extends (...a: never[]) => unknown ? K : never
  ]: EmulatedPortal[K] extends (...a: infer A) => infer R
    ? (...a: A) => Promise<Awaited<R>>
    : never;
};

export interface EmulatorCounters {
  /** Tokens the emulator keeps (two per delivery, never dropped). */
  tokens: number;
  /** Requests the no-op action receiver has had. */
  actions: number;
}

type EmulatorAsk =
  | { op: 'addPortal'; app: AppSettings }
  | { op: 'portal'; method: string; args: unknown[] }
  | { op: 'counters' };

/** What the parent asks the emulator's process. */
export type EmulatorRequest = EmulatorAsk & { id: number };

/** What the emulator's process answers: first `ready`, then one reply per request. */
export type EmulatorMessage =
  | { type: 'ready'; oauthUrl: string; sinkUrl: string }
  | { type: 'reply'; id: number; value?: unknown; error?: string };

export interface EmulatorProcess {
  /** The OAuth server the app must trust. */
  oauthUrl: string;
  /** A no-op HTTP action receiver (200 `{"ok": true}`) in the same process. */
  sinkUrl: string;
  /** A portal framing the app at `app.appUrl`. */
  addPortal(app: AppSettings): Promise<RemotePortal>;
  /** The emulator's counts so far; what it recorded is dropped, only the tokens stay. */
  counters(): Promise<EmulatorCounters>;
  close(): Promise<void>;
}

/**
 * The Bitrix24 emulator (OAuth server, one portal) and a no-op action receiver in their own
 * process (`emulator-child.js`), driven over IPC: what they keep is not in this process's
 * heap, so a bench measures the app alone. The child gets only PATH, and exits when this
 * process goes away.
 */
export async function startEmulatorProcess(): Promise<EmulatorProcess> {
  const child: ChildProcess = fork(path.join(benchDir, 'emulator-child.js'), [], {
    env: {
      PATH: process.env.PATH ?? '',
      EMULATOR_CLIENT_ID: CLIENT_ID,
      EMULATOR_CLIENT_SECRET: CLIENT_SECRET,
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 1;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const ready = new Promise<{ oauthUrl: string; sinkUrl: string }>((resolve, reject) => {
    child.on('message', (m: EmulatorMessage) => {
      if (m.type === 'ready') resolve(m);
      else {
        const w = waiting.get(m.id);
        waiting.delete(m.id);
        if (m.error !== undefined) w?.reject(new Error(`emulator: ${m.error}`));
        else w?.resolve(m.value);
      }
    });
    child.once('exit', (code) => {
      const err = new Error(`the emulator's process exited ${code}`);
      reject(err);
      for (const w of waiting.values()) w.reject(err);
      waiting.clear();
    });
  });
  const ask = <T>(req: EmulatorAsk): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ ...req, id });
    });
  const { oauthUrl, sinkUrl } = await ready;
  return {
    oauthUrl,
    sinkUrl,
    async addPortal(app) {
      await ask({ op: 'addPortal', app });
      return new Proxy({} as RemotePortal, {
        // Not `then`: the proxy is returned from an async function, which asks for it.
        get: (_t, method) =>
          typeof method === 'string' && method !== 'then'
            ? (...args: unknown[]) => ask({ op: 'portal', method, args })
            : undefined,
      });
    },
    counters: () => ask<EmulatorCounters>({ op: 'counters' }),
    async close() {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}
