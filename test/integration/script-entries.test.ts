import { execFile } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';

/**
 * `npm run bench` and `npm run test:reliability` run built test code in plain Node, outside
 * Jest. A helper they import that pulls in '@jest/globals' breaks them without failing any
 * test, so each entry is loaded here the way npm runs it.
 */
const dist = path.join(projectRoot(), 'dist', 'test');

function runNode(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stderr });
    });
  });
}

describe('script entry points outside Jest', () => {
  it('npm run bench loads every benchmark (an unknown name lists them)', async () => {
    const r = await runNode([path.join(dist, 'bench', 'run.js'), 'no-such-bench']);
    expect(r.stderr).toContain(
      'unknown benchmark "no-such-bench"; known: intake, process, maps, statements, prune, fairness, ui, soak, tenants, scale',
    );
    expect(r.code).toBe(2);
  });

  it('npm run test:reliability loads its suite', async () => {
    const suite = pathToFileURL(path.join(dist, 'reliability', 'suite.js')).href;
    const r = await runNode([
      '--input-type=module',
      '-e',
      `const m = await import(${JSON.stringify(suite)}); if (typeof m.runSuite !== 'function') process.exit(3);`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});
