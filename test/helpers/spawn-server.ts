import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../server/lib/project-root.js';

export interface SpawnedServer {
  proc: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnOptions {
  /** Working directory (default: the repository root). */
  cwd?: string;
  /** Command and arguments (default: node dist/server/main.js of the repository). */
  command?: readonly string[];
  /**
   * Run in a process group of its own and signal the whole group on stop: for commands
   * (`npm run …`) that start the server as a child and do not pass signals on.
   */
  group?: boolean;
}

/**
 * Starts the real built server (`dist/server/main.js`, as `npm start` does after building) and
 * resolves once it prints its listening URL.
 */
export function spawnServer(
  env: Record<string, string>,
  timeoutMs = 20_000,
  opts: SpawnOptions = {},
): Promise<SpawnedServer> {
  const [cmd, ...args] = opts.command ?? [
    process.execPath,
    path.join(projectRoot(), 'dist', 'server', 'main.js'),
  ];
  const proc = spawn(cmd!, args, {
    cwd: opts.cwd ?? projectRoot(),
    // ENV_FILE: a developer's .env in the repository must not reach a test's server.
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      ENV_FILE: '/dev/null',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.group === true,
  });
  const signal = (sig: NodeJS.Signals) => {
    if (opts.group && proc.pid) process.kill(-proc.pid, sig);
    else proc.kill(sig);
  };
  let out = '';
  let err = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal('SIGKILL');
      reject(new Error(`server did not start in ${timeoutMs} ms:\n${err}`));
    }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${err}`));
    });
    proc.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /is listening on (http:\/\/\S+)/.exec(err);
      if (m?.[1]) {
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        resolve({
          proc,
          url: m[1],
          stdout: () => out,
          stderr: () => err,
          stop: (sig = 'SIGTERM') =>
            new Promise((res) => {
              if (proc.exitCode !== null || proc.signalCode !== null) return res(proc.exitCode);
              proc.once('exit', (code) => res(code));
              signal(sig);
            }),
        });
      }
    });
  });
}
