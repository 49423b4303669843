#!/usr/bin/env node
// The `b24hooks` operator CLI (package.json "bin"). Builds the TypeScript once if dist/ is
// missing or older than the sources (never in a production install with an up-to-date
// build), reads `.env` like the server, then runs the command with this environment.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, ensureBuild } from './ensure-build.js';

try {
  ensureBuild(ROOT, undefined, { runStale: true });
  // The same `.env` as server/main.ts: variables already set win over the file.
  const envFile = path.resolve(process.env.ENV_FILE?.trim() || '.env');
  if (fs.existsSync(envFile)) process.loadEnvFile(envFile);
  // A file named on purpose and missing: its settings would silently be the defaults (a new
  // ./data), as the server refuses it too.
  else if (process.env.ENV_FILE?.trim()) throw new Error(`ENV_FILE ${envFile} does not exist`);
} catch (e) {
  process.stderr.write(`b24hooks: ${e.message}\n`);
  process.exit(1);
}

// Output piped into a reader that stops early (`status | head -3`): the rest is not wanted,
// and a write to the closed pipe must not end in an "Unhandled 'error' event" stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const entry = path.join(ROOT, 'dist', 'server', 'cli', 'run.js');
const { runCli } = await import(pathToFileURL(entry).href);
const code = await runCli(process.argv.slice(2), process.env, {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
});
process.exitCode = code;
