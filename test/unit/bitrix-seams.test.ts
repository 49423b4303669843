import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../server/lib/project-root.js';

/**
 * The REST client's shape (server/bitrix): it reaches the app only through its own context
 * interface (types.ts), so it never imports the app's deps or anything above it; a request
 * leaves by one function (transport.ts `requestJson`), and stored credentials are opened in
 * one file (oauth.ts).
 */
const root = projectRoot();
const dir = path.join(root, 'server', 'bitrix');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => ({ name: f, text: readFileSync(path.join(dir, f), 'utf8') }));

/** Repo-relative targets of a file's relative imports. */
function importsOf(text: string): string[] {
  return [...text.matchAll(/from '(\.[^']+)'/g)].map((m) =>
    path.relative(root, path.resolve(dir, m[1]!)).split(path.sep).join('/'),
  );
}

/** What server/bitrix may import: itself, the libraries below it, the stores. */
const ALLOWED = [
  /^server\/bitrix\//,
  /^server\/lib\//,
  /^server\/queue\/errors\.js$/,
  /^server\/(config|metrics|portal-directory)\.js$/,
  /^db\/(stores\/[a-z-]+|connect)\.js$/,
];
const allowed = (target: string) => ALLOWED.some((re) => re.test(target));

describe('server/bitrix seams', () => {
  it('imports nothing above it (no deps.ts, no routes, no worker)', () => {
    const imports = files.flatMap((f) => importsOf(f.text).map((t) => `${f.name} -> ${t}`));
    // Control: the scan sees the imports, and the rule refuses the app's deps.
    expect(imports.length).toBeGreaterThan(20);
    expect(allowed('server/deps.js')).toBe(false);
    expect(imports.filter((i) => !allowed(i.split(' -> ')[1]!))).toEqual([]);
  });

  it('sends every request through transport.ts and opens stored credentials only in oauth.ts', () => {
    const where = (re: RegExp) => files.filter((f) => re.test(f.text)).map((f) => f.name);
    expect(where(/\bfetchFn\(|\bfetch\(/)).toEqual(['transport.ts']);
    expect(where(/\.decrypt\(/)).toEqual(['oauth.ts']);
    expect(where(/b24jssdk['"]/)).toEqual([]);
  });
});
