#!/usr/bin/env node
// The `b24hooks` operator CLI (package.json "bin"). Builds the TypeScript once if dist/ is
// missing or older than the sources, then runs the command with this process's environment.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const entry = path.join(root, 'dist', 'server', 'cli', 'run.js');

function newestSource(dir) {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

const built = fs.existsSync(entry) ? fs.statSync(entry).mtimeMs : 0;
if (
  built === 0 ||
  newestSource(path.join(root, 'server')) > built ||
  newestSource(path.join(root, 'db')) > built
) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', root], { stdio: ['ignore', 2, 2] });
  const now = new Date();
  fs.utimesSync(entry, now, now);
}

const { runCli } = await import(pathToFileURL(entry).href);
const code = await runCli(process.argv.slice(2), process.env, {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
});
process.exitCode = code;
