import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';

/**
 * The import graph of server/ and db/ against the layer map in .dependency-cruiser.cjs: no
 * module cycle, no import up the layers or sideways within one. Offline, a few seconds.
 */
const root = projectRoot();
const bin = path.join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
const config = path.join(root, '.dependency-cruiser.cjs');

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
}

function cruise(cwd: string): Promise<Violation[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [bin, '--config', config, '--output-type', 'json', '--no-progress', 'server', 'db'],
      { cwd, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (err, stdout, stderr) => {
        // depcruise exits non-zero when it finds violations: the JSON is still there.
        if (!stdout) return reject(err ?? new Error(stderr));
        const report = JSON.parse(stdout) as { summary: { violations: Violation[] } };
        resolve(report.summary.violations);
      },
    );
  });
}

const edges = (vs: Violation[]) =>
  vs.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort((a, b) => a.localeCompare(b));

/**
 * Imports that still break the map, each to be removed by the work named beside it. The test
 * fails when one of them is gone, so that the list only shrinks: delete the line then.
 */
const KNOWN: string[] = [];

/** A small tree laid out like the repo, with one of each thing the map forbids. */
function badTree(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'b24hooks-layers-'));
  const files: Record<string, string> = {
    'tsconfig.json': JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext' },
      include: ['server/**/*.ts', 'db/**/*.ts'],
    }),
    'server/start.ts': 'export const start = 1;\n',
    'server/services.ts': 'export const services = 1;\n',
    // Up the layers: the bottom imports the top.
    'server/lib/clock.ts': "import { start } from '../start.js';\nexport const clock = start;\n",
    // Sideways: two parts of one layer.
    'server/ui/page.ts':
      "import { services } from '../services.js';\nexport const page = services;\n",
    // Up the layers through a type import only.
    'db/stores/jobs.ts':
      "import type { Job } from '../../server/queue/types.js';\nexport const jobs: Job[] = [];\n",
    'server/queue/types.ts': 'export interface Job {\n  id: number;\n}\n',
    // A cycle inside one part.
    'server/cli/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
    'server/cli/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n",
    // A part the map does not know.
    'server/stray.ts': "import { clock } from './lib/clock.js';\nexport const stray = clock;\n",
    // Allowed: down the layers (never reported).
    'server/queue/worker.ts':
      "import { clock } from '../lib/clock.js';\nimport type { Job } from './types.js';\nexport const w = (j: Job) => clock + j.id;\n",
  };
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe('the layers of server/ and db/', () => {
  const tmp = badTree();
  const results = Promise.all([cruise(root), cruise(tmp)]);
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('has no import cycle, no import up the layers and none sideways', async () => {
    const [ours] = await results;
    const found = edges(ours);
    expect(found.filter((e) => !KNOWN.includes(e))).toEqual([]);
    // Once fixed, a known exception leaves the list (it would hide a new one otherwise).
    expect(KNOWN.filter((k) => !found.includes(k))).toEqual([]);
  }, 60_000);

  it('reports each kind of violation in a tree that has them (the rules fire)', async () => {
    const [, bad] = await results;
    expect(edges(bad)).toEqual([
      'layer:db/: db/stores/jobs.ts -> server/queue/types.ts',
      'layer:server/lib/: server/lib/clock.ts -> server/start.ts',
      'layer:server/ui/: server/ui/page.ts -> server/services.ts',
      'no-circular: server/cli/a.ts -> server/cli/b.ts',
      'not-in-the-layer-map: server/stray.ts -> server/lib/clock.ts',
    ]);
  }, 60_000);
});
