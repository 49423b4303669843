import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const benchDir = path.dirname(fileURLToPath(import.meta.url));

export interface LoadResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** Runs the load generator in its own process. */
export function runLoad(options: Record<string, unknown>): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [path.join(benchDir, 'load.js'), JSON.stringify(options)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop();
      if (code !== 0 || !line) reject(new Error(`load generator exited ${code}`));
      else resolve(JSON.parse(line) as LoadResult);
    });
  });
}

/** Starts a server script and resolves with its URL once it prints one. */
export function startProcess(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ proc: ChildProcess; url: string; stop(): Promise<void> }> {
  const proc = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let seen = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      seen += d.toString();
      const m = /(?:listening on|is listening on) (http:\/\/\S+)/.exec(seen);
      if (m?.[1]) {
        proc.stdout?.off('data', onData);
        proc.stderr?.off('data', onData);
        proc.stdout?.resume();
        proc.stderr?.resume();
        resolve({
          proc,
          url: m[1],
          stop: () =>
            new Promise<void>((r) => {
              proc.once('exit', () => r());
              proc.kill('SIGTERM');
            }),
        });
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${seen}`)));
  });
}

export const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/**
 * A server's main-thread event-loop delay (ms) since its previous `/metrics` scrape: p99 and
 * max (NaN when the metric is missing). Each scrape starts a new window.
 */
/**
 * The server's main-connection SQL so far (`b24hooks_db_statement_seconds`): statements, their
 * total time in ms, and how many took longer than 5 and than 10 ms.
 */
export async function statementFigures(
  url: string,
): Promise<{ count: number; ms: number; over5ms: number; over10ms: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const count = num(/^b24hooks_db_statement_seconds_count (\S+)$/m);
  const upTo = (le: string) =>
    num(new RegExp(`^b24hooks_db_statement_seconds_bucket\\{le="${le}"\\} (\\S+)$`, 'm'));
  return {
    count,
    ms: num(/^b24hooks_db_statement_seconds_sum (\S+)$/m) * 1000,
    over5ms: count - upTo('0.005'),
    over10ms: count - upTo('0.01'),
  };
}

export async function loopDelay(url: string): Promise<{ p99: number; max: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const q = (quantile: string) => {
    const m = new RegExp(
      `^b24hooks_event_loop_delay_seconds\\{quantile="${quantile}"\\} (\\S+)$`,
      'm',
    ).exec(text);
    return m?.[1] ? Number(m[1]) * 1000 : NaN;
  };
  return { p99: q('0.99'), max: q('1') };
}
