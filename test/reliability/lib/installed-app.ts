import path from 'node:path';
import type { BitrixRestOptions } from '../../../server/bitrix/rest.js';
import type { Env } from '../../../server/config.js';
import type { EventMap } from '../../../server/rules/model.js';
import { saveRuleMap } from '../../../server/rules/map-store.js';
import { openDb, type Db } from '../../../db/connect.js';
import {
  installPortal,
  spawnedAppEnv,
  startInstallHarness,
  type InstallHarness,
} from '../../helpers/install-harness.js';
import { spawnServer, type SpawnedServer } from '../../helpers/spawn-server.js';
import type { ReliabilityContext } from '../types.js';

export interface DeliveryTarget {
  memberId: string;
  domain: string;
  applicationToken: string;
}

/**
 * A data dir with the app installed on an emulated portal (real install flow) and an event
 * map, ready for the real server process (`dist/server/main.js`) to run on it. The emulator
 * keeps running, so the spawned server reads deals over REST with the stored tokens.
 */
export interface InstalledApp {
  h: InstallHarness;
  portal: Awaited<ReturnType<InstallHarness['addPortal']>>;
  /** What a delivery's `auth` needs (for eventBody). */
  who: DeliveryTarget;
  /** Environment for spawnServer: same secrets, data dir and allowlists. */
  env: Record<string, string>;
  dataDir: string;
  dbFile: string;
  /** Starts the real server; its output is collected into ctx.logs when it stops or dies. */
  spawn(extraEnv?: Record<string, string>): Promise<SpawnedServer>;
  /** A second connection to the SQLite file, as an operator's sqlite3 would open it. */
  openDb(): Db;
  /** Stops the emulator; the data dir stays (ctx.dataDirs, scanned and removed by the suite). */
  close(): Promise<void>;
}

export async function prepareInstalledApp(
  ctx: ReliabilityContext,
  map: EventMap,
  env: Env = {},
): Promise<InstalledApp> {
  const h = await startInstallHarness(env);
  const portal = await h.addPortal();
  const res = await portal.install();
  if (res.status !== 200) throw new Error(`install answered ${res.status}`);
  await saveRuleMap(h.t.deps.db, undefined, map, h.t.clock.now());
  await h.stopApp();
  await h.t.deps.close();
  const dataDir = h.t.dir;
  ctx.dataDirs.push(dataDir);
  const baseEnv: Record<string, string> = {
    ...spawnedAppEnv(h, dataDir),
    LOG_LEVEL: 'info',
    ...(env as Record<string, string>),
  };
  const dbs: Db[] = [];
  return {
    h,
    portal,
    who: {
      memberId: portal.memberId,
      domain: portal.domain,
      applicationToken: portal.applicationToken,
    },
    env: baseEnv,
    dataDir,
    dbFile: path.join(dataDir, 'b24hooks.sqlite'),
    async spawn(extraEnv = {}) {
      const server = await spawnServer({ ...baseEnv, ...extraEnv });
      server.proc.once('exit', () => ctx.logs.push(server.stdout(), server.stderr()));
      return server;
    },
    openDb() {
      const db = openDb({ client: 'sqlite', filename: path.join(dataDir, 'b24hooks.sqlite') });
      dbs.push(db);
      return db;
    },
    async close() {
      for (const db of dbs) await db.destroy();
      for (const t of h.emu.issuedTokens()) ctx.issuedTokens.add(t);
      ctx.logs.push(...h.t.logs.lines);
      await h.emu.close();
    },
  };
}

/** The app installed on an emulated portal and running in this process (its clock is ours). */
export interface InProcessApp {
  h: InstallHarness;
  portal: Awaited<ReturnType<InstallHarness['addPortal']>>;
  /** Waits until deliveries sent so far are stored and every due job has run. */
  settle(): Promise<void>;
  /** Hands the emulator's tokens and the app's logs to the suite, then stops everything. */
  close(): Promise<void>;
}

export async function startInProcessApp(
  ctx: ReliabilityContext,
  env: Env,
  app: { bitrix?: BitrixRestOptions } = {},
): Promise<InProcessApp> {
  const h = await startInstallHarness(env, {}, app);
  ctx.dataDirs.push(h.t.dir);
  const close = async () => {
    for (const t of h.emu.issuedTokens()) ctx.issuedTokens.add(t);
    ctx.logs.push(...h.t.logs.lines);
    await h.emu.close();
    await h.stopApp();
    await h.t.deps.close();
  };
  try {
    const { portal, settle } = await installPortal(h);
    return { h, portal, settle, close };
  } catch (e) {
    await close();
    throw e;
  }
}
