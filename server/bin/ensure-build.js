#!/usr/bin/env node
// Builds the TypeScript only when dist/ is missing or older than the sources, so `npm start`
// and `npx b24hooks` on an up-to-date build run no compiler. Plain JavaScript: it runs before
// anything is built, and in a production install (no TypeScript, maybe no sources at all).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * Written after every build this script runs. tsc's build info does not count: `tsc --noEmit`
 * (npm run typecheck) writes it too, with nothing emitted, and `npm start` then ran the old
 * build of a source edited before the type check.
 */
const STAMP = path.join('dist', '.build-stamp');
/**
 * What the server and the CLI are built from. `npm run demo` and `npm run emulator` run code
 * under test/ as well and pass `--with-tests`; the server never imports test/, so an edited
 * test file does not make `npm start` or `npx b24hooks` build again.
 */
export const SERVER_DIRS = ['server', 'db'];
export const WITH_TESTS = [...SERVER_DIRS, 'test'];

/** The newest modification time of the files under `dir` whose names end with `ext`. */
function newestFile(dir, ext) {
  let newest = 0;
  if (!fs.existsSync(dir)) return newest;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestFile(p, ext));
    else if (e.name.endsWith(ext)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}
const newestSource = (dir) => newestFile(dir, '.ts');

const mtime = (file) => (fs.existsSync(file) ? fs.statSync(file).mtimeMs : 0);

/**
 * Why a build is needed in `root` ('missing', 'stale'), or undefined when dist/ is up to
 * date or there are no sources to build from (a runtime image holds dist/ only).
 */
export function buildNeeded(root = ROOT, dirs = SERVER_DIRS) {
  const sources = Math.max(
    ...dirs.map((d) => newestSource(path.join(root, d))),
    mtime(path.join(root, 'tsconfig.json')),
  );
  if (sources === 0 || !fs.existsSync(path.join(root, 'server', 'main.ts'))) return undefined;
  const entries = [path.join('server', 'main.js')];
  if (dirs.includes('test')) entries.push(path.join('test', 'demo', 'main.js'));
  if (entries.some((e) => !fs.existsSync(path.join(root, 'dist', e)))) return 'missing';
  // The build is as new as what it emitted (tsc rewrites the output of every source it
  // compiles; `npm run build` writes no stamp), or as the last build this script ran.
  const built = Math.max(
    mtime(path.join(root, STAMP)),
    ...dirs.map((d) => newestFile(path.join(root, 'dist', d), '.js')),
  );
  return sources > built ? 'stale' : undefined;
}

/**
 * Runs tsc when needed (output to stderr); throws with advice when TypeScript is absent.
 * `runStale`: a build that is only older than the sources is run as it is, with a warning,
 * when TypeScript is absent (the CLI on a production install, whose sources' times a copy
 * or a `git pull` reset: it had no `start:prod` of its own to fall back on).
 */
export function ensureBuild(root = ROOT, dirs = SERVER_DIRS, { runStale = false } = {}) {
  const why = buildNeeded(root, dirs);
  if (!why) return false;
  let tsc;
  try {
    tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    if (runStale && why === 'stale') {
      process.stderr.write(
        'b24hooks: dist/ is older than the sources and TypeScript is not installed (a production ' +
          'install): running the build as it is; build where the dev dependencies are to run the changed sources\n',
      );
      return false;
    }
    throw new Error(
      `dist/ is ${why === 'missing' ? 'missing' : 'older than the sources'} and TypeScript is not ` +
        'installed (a production install): build where the dev dependencies are (npm ci && npm run build), ' +
        'or run the build as it is with `npm run start:prod`',
    );
  }
  process.stderr.write(
    `b24hooks: building (${why === 'missing' ? 'no build yet' : 'sources changed'})…\n`,
  );
  execFileSync(process.execPath, [tsc, '-p', root], { stdio: ['ignore', 2, 2] });
  fs.writeFileSync(path.join(root, STAMP), `${new Date().toISOString()}\n`);
  return true;
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    ensureBuild(ROOT, process.argv.includes('--with-tests') ? WITH_TESTS : SERVER_DIRS);
  } catch (e) {
    process.stderr.write(`b24hooks: ${e.message}\n`);
    process.exit(1);
  }
}
