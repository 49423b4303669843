import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';
import { onPg } from '../helpers/pg.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { tempDir } from '../helpers/temp-dir.js';

const root = projectRoot();
const run = promisify(execFile);

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  steps: Instruction[];
}

/** The Dockerfile's stages and instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const stages: Stage[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [op, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
      stages.push({ from: m[1]!, name: m[2] ?? `stage${stages.length}`, steps: [] });
    } else stages.at(-1)!.steps.push({ op: op!.toUpperCase(), args });
  }
  return stages;
}

/** `K=V K2="V 2"` → entries. */
const envPairs = (args: string): Array<[string, string]> =>
  [...args.matchAll(/([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)/g)].map((m) => [
    m[1]!,
    m[2]!.replace(/^"|"$/g, ''),
  ]);

/** Commands a container build runs as root on the base image; here they are not run. */
const SYSTEM_COMMAND = /^(apt-get|rm -rf \/var\/lib\/apt|mkdir -p \/data|chown )/;

/**
 * A copy of a `node_modules` tree made of hard links: 14,000 files copied one by one took
 * 6 s alone and over a minute beside the rest of the suite's disk writes. Nothing writes
 * into the files of the tree (the build writes `dist/`, `npm prune` removes whole packages
 * and rewrites only npm's own record of the tree, which is copied, not linked, so the
 * checkout's is never touched). Across file systems, a copy.
 */
async function linkTree(source: string, target: string): Promise<void> {
  try {
    await run('cp', ['-al', source, target]);
  } catch {
    // Another file system than the checkout's (a tmpfs /tmp): no links across, so a copy.
    fs.rmSync(target, { recursive: true, force: true });
    fs.cpSync(source, target, { recursive: true, verbatimSymlinks: true });
    return;
  }
  const record = path.join(target, '.package-lock.json');
  if (fs.existsSync(record)) {
    fs.rmSync(record);
    fs.copyFileSync(path.join(source, '.package-lock.json'), record);
  }
}

/**
 * The Dockerfile's steps performed without a Docker engine: every COPY into a temp directory
 * per stage (WORKDIR /app), every RUN in it, except system package steps and `npm ci`,
 * which links this checkout's installed node_modules instead (no network here; CI runs
 * the real `npm ci` in .ci/run). The runtime stage's ENV, HEALTHCHECK and CMD are kept to
 * start the image's command.
 */
async function buildImage(dir: string) {
  const stages = parseDockerfile(fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8'));
  const dirs = new Map<string, string>();
  const skipped: string[] = [];
  const runtime = {
    env: {} as Record<string, string>,
    cmd: [] as string[],
    healthcheck: '',
    user: '',
    volumes: [] as string[],
  };
  for (const stage of stages) {
    const work = path.join(dir, stage.name);
    fs.mkdirSync(work, { recursive: true });
    dirs.set(stage.name, work);
    for (const { op, args } of stage.steps) {
      if (op === 'WORKDIR') expect(args).toBe('/app');
      else if (op === 'COPY') {
        const parts = args.split(/\s+/);
        const from = parts.find((p) => p.startsWith('--from='))?.slice(7);
        const paths = parts.filter((p) => !p.startsWith('--'));
        const dest = paths.pop()!;
        const base = from ? dirs.get(from)! : root;
        for (const src of paths) {
          const source = path.join(base, from ? path.relative('/app', src) : src);
          const target =
            dest.endsWith('/') || dest === '.'
              ? path.join(work, dest, path.basename(src))
              : path.join(work, dest);
          if (path.basename(source) === 'node_modules') await linkTree(source, target);
          else fs.cpSync(source, target, { recursive: true, verbatimSymlinks: true });
        }
      } else if (op === 'RUN') {
        for (const cmd of args.split('&&').map((c) => c.trim())) {
          if (SYSTEM_COMMAND.test(cmd)) skipped.push(cmd);
          else if (/^npm ci\b/.test(cmd)) {
            await linkTree(path.join(root, 'node_modules'), path.join(work, 'node_modules'));
          } else {
            await run('sh', ['-c', cmd], {
              cwd: work,
              env: { ...process.env, NODE_OPTIONS: '', npm_config_offline: 'true' },
              maxBuffer: 64 * 1024 * 1024,
            });
          }
        }
      } else if (op === 'ENV') Object.assign(runtime.env, Object.fromEntries(envPairs(args)));
      else if (op === 'CMD') runtime.cmd = JSON.parse(args) as string[];
      else if (op === 'HEALTHCHECK') runtime.healthcheck = args.slice(args.indexOf('CMD ') + 4);
      else if (op === 'USER') runtime.user = args;
      else if (op === 'VOLUME') runtime.volumes = JSON.parse(args) as string[];
    }
  }
  return { stages, dirs, skipped, runtime };
}

// The image runs on SQLite; the PostgreSQL pass has nothing to add to it.
(onPg() ? describe.skip : describe)('the Docker image, built without Docker', () => {
  const tmp = tempDir();
  let image: Awaited<ReturnType<typeof buildImage>>;
  let build: string;
  let app: string;

  beforeAll(async () => {
    image = await buildImage(tmp.dir);
    build = image.dirs.get('build')!;
    app = image.dirs.get(image.stages.at(-1)!.name)!;
  }, 300_000);
  afterAll(() => tmp.cleanup());

  it('has a build stage and a non-root runtime stage with DATA_DIR as a volume', () => {
    expect(image.stages.map((s) => s.name)).toEqual(['build', 'stage1']);
    // Both stages run the Node major this suite runs on (the stack's Node 20: better-sqlite3
    // 12 is built and tested for it), not a newer runtime no test has seen.
    const major = process.versions.node.split('.')[0];
    expect(image.stages.map((s) => /^node:(\d+)-/.exec(s.from)?.[1])).toEqual([major, major]);
    expect(image.runtime.user).toBe('node');
    expect(image.runtime.env.DATA_DIR).toBe('/data');
    expect(image.runtime.volumes).toEqual(['/data']);
    expect(image.runtime.healthcheck).toContain('/readyz');
    // Control: the steps skipped here are only the system ones.
    expect(image.skipped.every((c) => SYSTEM_COMMAND.test(c))).toBe(true);
  });

  it('holds the built code, production dependencies, views and assets only', () => {
    expect(fs.readdirSync(app).sort()).toEqual(
      [
        'dist',
        'manifest.json',
        'node_modules',
        'package.json',
        'placement',
        'server',
        'views',
      ].sort(),
    );
    expect(fs.readdirSync(path.join(app, 'server'))).toEqual(['bin']);
    expect(fs.readdirSync(path.join(app, 'dist')).sort()).toEqual(
      expect.arrayContaining(['db', 'server']),
    );
    expect(fs.existsSync(path.join(app, 'dist', 'test'))).toBe(false);
    const modules = fs.readdirSync(path.join(app, 'node_modules'));
    // Control: production dependencies are there, development ones are not.
    expect(modules).toEqual(
      expect.arrayContaining(['express', 'knex', 'better-sqlite3', 'pino-http']),
    );
    for (const dev of ['typescript', 'jest', 'playwright-core', 'supertest', 'prettier'])
      expect(modules).not.toContain(dev);
  });

  it("serves /readyz with the image's command; its HEALTHCHECK passes and the CLI works", async () => {
    const dataDir = path.join(tmp.dir, 'data');
    const env = { ...image.runtime.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir };
    const server = await spawnServer(env, 20_000, { cwd: app, command: image.runtime.cmd });
    try {
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      const port = new URL(server.url).port;
      await run('sh', ['-c', image.runtime.healthcheck], {
        cwd: app,
        env: { PATH: process.env.PATH ?? '', PORT: port },
      });
      const cli = await run(process.execPath, ['server/bin/b24hooks.js', 'status', '--json'], {
        cwd: app,
        env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir },
      });
      expect(JSON.parse(cli.stdout).total).toBeDefined();
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('after the prune, `npm run start:prod` and `npm start` serve /readyz without a compiler', async () => {
    expect(fs.existsSync(path.join(build, 'node_modules', 'typescript'))).toBe(false);
    for (const script of ['start:prod', 'start']) {
      const server = await spawnServer(
        { DATA_DIR: path.join(tmp.dir, `data-${script}`), HOME: process.env.HOME ?? '' },
        20_000,
        { cwd: build, command: ['npm', 'run', '-s', script], group: true },
      );
      try {
        expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
        expect(server.stderr()).not.toContain('building');
      } finally {
        await server.stop();
        await waitGone(server.proc.pid!);
      }
    }
    // Control: with a source newer than the build, `npm start` would need the compiler.
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(path.join(build, 'server', 'main.ts'), later, later);
    await expect(
      run('npm', ['run', '-s', 'start'], {
        cwd: build,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ENV_FILE: '/dev/null' },
      }),
    ).rejects.toMatchObject({ stderr: expect.stringContaining('TypeScript is not installed') });
  });
});

/** Resolves once no process of the group is left. */
async function waitGone(pgid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`process group ${pgid} still running`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
