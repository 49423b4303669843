import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * `server/bin/ensure-build.js` is plain JavaScript run before anything is built; it is asked
 * here in a child process, on a made-up tree, which build it finds needed.
 */
const script = pathToFileURL(path.join(projectRoot(), 'server', 'bin', 'ensure-build.js')).href;

function needed(root: string, withTests: boolean): string {
  const code =
    `const m = await import(${JSON.stringify(script)});` +
    `const r = m.buildNeeded(${JSON.stringify(root)}, ${withTests ? 'm.WITH_TESTS' : 'm.SERVER_DIRS'});` +
    `process.stdout.write(String(r));`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
  });
}

function write(root: string, file: string, at: Date): void {
  const p = path.join(root, file);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, '');
  fs.utimesSync(p, at, at);
}

describe('ensure-build', () => {
  const t = tempDir();
  afterAll(() => t.cleanup());
  const root = t.dir;
  const built = new Date('2026-01-02T00:00:00Z');
  const before = new Date('2026-01-01T00:00:00Z');
  const after = new Date('2026-01-03T00:00:00Z');

  it('builds for the server only when its own sources changed, and for the demo when tests did', () => {
    write(root, 'server/main.ts', before);
    write(root, 'db/connect.ts', before);
    write(root, 'test/demo/main.ts', before);
    write(root, 'dist/server/main.js', built);
    write(root, 'dist/test/demo/main.js', built);
    write(root, 'dist/.build-stamp', built);
    expect(needed(root, false)).toBe('undefined');
    expect(needed(root, true)).toBe('undefined');

    // A test edited after the build: the server and the CLI start without building.
    write(root, 'test/integration/x.test.ts', after);
    expect(needed(root, false)).toBe('undefined');
    expect(needed(root, true)).toBe('stale');

    // Control: a server source edited after the build is seen by both.
    write(root, 'db/connect.ts', after);
    expect(needed(root, false)).toBe('stale');
    expect(needed(root, true)).toBe('stale');
  });

  it('is not fooled by the build info a type check writes without emitting anything', () => {
    const r = path.join(root, 'typecheck');
    write(r, 'server/main.ts', before);
    write(r, 'dist/server/main.js', built);
    expect(needed(r, false)).toBe('undefined');
    // A source edited, then `tsc --noEmit` (npm run typecheck): its build info is newer than
    // the sources, the emitted code is not.
    write(r, 'server/main.ts', after);
    write(r, 'dist/.tsbuildinfo', new Date('2026-01-04T00:00:00Z'));
    expect(needed(r, false)).toBe('stale');
    // `npm run build` (tsc, no stamp) emits it again: up to date.
    write(r, 'dist/server/main.js', new Date('2026-01-04T00:00:00Z'));
    expect(needed(r, false)).toBe('undefined');
  });

  it('builds for the demo when its entry was never built', () => {
    fs.rmSync(path.join(root, 'dist', 'test'), { recursive: true, force: true });
    write(root, 'db/connect.ts', before);
    write(root, 'test/integration/x.test.ts', before);
    expect(needed(root, false)).toBe('undefined');
    expect(needed(root, true)).toBe('missing');
  });

  /**
   * A production install (no TypeScript) whose sources' times a copy or a `git pull` moved
   * past the build: the CLI refused every command and pointed at `start:prod`, the server's
   * way round, which the CLI has none of.
   */
  it('lets the CLI run a stale build where TypeScript is absent, and still refuses a missing one', () => {
    const r = path.join(root, 'production');
    write(r, 'package.json', before);
    write(r, 'server/main.ts', after);
    write(r, 'dist/server/main.js', built);
    const run = (runStale: boolean) =>
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const m = await import(${JSON.stringify(script)});` +
            `try { process.stdout.write(String(m.ensureBuild(${JSON.stringify(r)}, m.SERVER_DIRS, { runStale: ${runStale} }))); }` +
            `catch (e) { process.stdout.write('refused: ' + e.message); }`,
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
    expect(run(false)).toMatch(/^refused: dist\/ is older than the sources/);
    expect(run(true)).toBe('false');
    fs.rmSync(path.join(r, 'dist'), { recursive: true, force: true });
    expect(run(true)).toMatch(/^refused: dist\/ is missing/);
  });
});
