import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';
import { validateEventMap } from '../../server/rules/validate.js';

/**
 * The docs live beside the code: README.md is the entry, and every other README of the repo is
 * reachable from it by links that resolve to a file and, with `#…`, to a heading there.
 */
const root = projectRoot();

function readmes(dir = root): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || e.name === 'node_modules' || e.name === 'dist') continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...readmes(p));
    else if (e.name === 'README.md') out.push(p);
  }
  return out;
}

/** Markdown without its fenced code blocks (a `#` there is no heading, a `](` no link). */
const prose = (file: string) =>
  fs.readFileSync(file, 'utf8').replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replace(/ /g, '-');

const anchorsOf = (file: string) =>
  new Set([...prose(file).matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)));

/** Relative links of a Markdown file: [text](target) with no scheme. */
const linksOf = (file: string) =>
  [...prose(file).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((t) => !/^[a-z]+:/i.test(t));

describe('docs beside the code', () => {
  const files = readmes();

  it('finds the README files', () => {
    expect(files.map((f) => path.relative(root, f))).toEqual(
      expect.arrayContaining(['README.md', 'server/README.md', 'server/rules/README.md']),
    );
  });

  it('every relative link resolves to a file, and every #anchor to a heading there', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const file of files) {
      for (const link of linksOf(file)) {
        const [target = '', hash] = link.split('#');
        const to = target ? path.resolve(path.dirname(file), target) : file;
        checked++;
        if (!fs.existsSync(to)) broken.push(`${path.relative(root, file)}: ${link} (no file)`);
        else if (hash && to.endsWith('.md') && !anchorsOf(to).has(hash))
          broken.push(`${path.relative(root, file)}: ${link} (no heading)`);
      }
    }
    expect(checked).toBeGreaterThan(50);
    expect(broken).toEqual([]);
  });

  it('every README is reachable from README.md by links, and README.md stays short', () => {
    const seen = new Set<string>();
    const queue = [path.join(root, 'README.md')];
    while (queue.length) {
      const file = queue.shift()!;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const link of linksOf(file)) {
        const target = link.split('#')[0]!;
        const to = path.resolve(path.dirname(file), target);
        if (target.endsWith('.md') && fs.existsSync(to)) queue.push(to);
      }
    }
    expect(files.filter((f) => !seen.has(f)).map((f) => path.relative(root, f))).toEqual([]);
    const lines = fs.readFileSync(path.join(root, 'README.md'), 'utf8').split('\n').length;
    expect(lines).toBeLessThan(200);
  });

  it('every event map shown in the docs validates', () => {
    const maps: unknown[] = [];
    for (const file of files) {
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^```json\n([\s\S]*?)^```$/gm)) {
        const json = JSON.parse(m[1]!) as unknown;
        if (json && typeof json === 'object' && 'rules' in json) maps.push(json);
      }
    }
    expect(maps.length).toBeGreaterThan(0);
    const invalid = maps
      .map((json) => validateEventMap(json))
      .filter((r) => !r.ok)
      .map((r) => (r.ok ? [] : r.errors));
    expect(invalid).toEqual([]);
  });
});
