import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse as parseYaml } from 'yaml';
import { projectRoot } from '../../server/lib/project-root.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { tempDir } from '../helpers/temp-dir.js';

const root = projectRoot();
const run = promisify(execFile);
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  scripts: Record<string, string>;
};

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });

function walk(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p, ext));
    else if (e.name.endsWith(ext)) out.push(p);
  }
  return out;
}

/** Variables of README's Configuration table (first column). */
function readmeConfigVariables(): string[] {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| variable')));
  const names = new Set<string>();
  for (const line of table.split('\n').slice(2)) {
    const first = line.split('|')[1] ?? '';
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(m[1]!);
  }
  return [...names];
}

describe('what production runs', () => {
  it('built server code imports only production dependencies and never test/', () => {
    const allowed = new Set(Object.keys(pkg.dependencies));
    // Only outputs of current sources (a local dist/ may hold outputs of deleted files).
    const files = ['server', 'db']
      .flatMap((d) => walk(path.join(root, 'dist', d), '.js'))
      .filter((f) =>
        fs.existsSync(
          path.join(root, path.relative(path.join(root, 'dist'), f)).replace(/\.js$/, '.ts'),
        ),
      );
    expect(files.length).toBeGreaterThan(50);
    const bad: string[] = [];
    let bare = 0;
    for (const f of files) {
      const src = fs.readFileSync(f, 'utf8');
      const imports =
        /^\s*(?:import|export)\b[^'";]*?\bfrom\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
      for (const m of src.matchAll(imports)) {
        const spec = (m[1] ?? m[2] ?? m[3])!;
        if (spec.startsWith('node:')) continue;
        if (spec.startsWith('.')) {
          const target = path.resolve(path.dirname(f), spec);
          if (target.startsWith(path.join(root, 'dist', 'test'))) bad.push(`${f}: ${spec}`);
          continue;
        }
        bare++;
        const name = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : spec.split('/')[0]!;
        if (!allowed.has(name)) bad.push(`${path.relative(root, f)}: ${spec}`);
      }
    }
    expect(bare).toBeGreaterThan(20); // control: the scan sees the package imports
    expect(bad).toEqual([]);
  });

  it('.env.example lists every variable of the configuration table and of server/config.ts', () => {
    const example = fs.readFileSync(path.join(root, '.env.example'), 'utf8');
    const listed = new Set([...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!));
    // server/config.ts and its section parsers in server/config/.
    const config = [
      path.join(root, 'server', 'config.ts'),
      ...fs
        .readdirSync(path.join(root, 'server', 'config'))
        .map((f) => path.join(root, 'server', 'config', f)),
    ]
      .map((f) => fs.readFileSync(f, 'utf8'))
      .join('\n');
    const read = new Set(
      [
        ...config.matchAll(/env\.([A-Z][A-Z0-9_]+)|(?:int|url|share|text)\('([A-Z][A-Z0-9_]+)'/g),
      ].map((m) => (m[1] ?? m[2])!),
    );
    const table = readmeConfigVariables();
    expect(table.length).toBeGreaterThan(25);
    expect(read.size).toBeGreaterThan(25);
    expect(table.filter((v) => !listed.has(v))).toEqual([]);
    expect([...read].filter((v) => !listed.has(v))).toEqual([]);
    expect([...read].filter((v) => !table.includes(v))).toEqual([]);
  });

  it('compose.yaml runs PostgreSQL and two app instances that share its database and key', () => {
    const doc = parseYaml(fs.readFileSync(path.join(root, 'compose.yaml'), 'utf8'), {
      merge: true,
    }) as { services: Record<string, any>; volumes: Record<string, unknown> };
    const { db, ...apps } = doc.services;
    expect(db.image).toMatch(/^postgres:/);
    expect(db.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(Object.keys(apps).sort()).toEqual(['app1', 'app2']);
    const ports = new Set<string>();
    const example = fs.readFileSync(path.join(root, '.env.example'), 'utf8');
    for (const [name, app] of Object.entries(apps)) {
      expect(app.build).toBe('.');
      expect(app.depends_on.db.condition).toBe('service_healthy');
      expect(app.healthcheck.test.join(' ')).toContain('/readyz');
      // The password beside the URL: inside it, # / @ ? would have to be percent-encoded.
      expect(app.environment.DATABASE_URL).toBe('postgres://b24hooks@db:5432/b24hooks');
      expect(app.environment.PGPASSWORD).toBe(db.environment.POSTGRES_PASSWORD);
      for (const v of ['SESSION_SECRET', 'TOKEN_ENCRYPTION_KEY', 'APP_URL']) {
        expect(app.environment[v]).toBe(`\${${v}:?${app.environment[v].split(':?')[1]}`);
      }
      for (const v of Object.keys(app.environment)) expect(example).toContain(`${v}=`);
      expect(app.environment.DATA_DIR).toBe('/data');
      expect(app.volumes).toEqual([`${name}-data:/data`]);
      expect(Object.keys(doc.volumes)).toContain(`${name}-data`);
      for (const p of app.ports) ports.add(String(p).split(':').slice(0, 2).join(':'));
    }
    expect(ports.size).toBe(2);
    for (const p of ports) expect(p).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('reads .env from the working directory; the environment wins over it (server and CLI)', async () => {
    const tmp = tempDir();
    try {
      const dataDir = path.join(tmp.dir, 'from-dotenv');
      fs.writeFileSync(
        path.join(tmp.dir, '.env'),
        `DATA_DIR=${dataDir}\nLOG_LEVEL=warn\nMAX_ATTEMPTS=7\n# a comment\nWORKER_CONCURRENCY=not-a-number\n`,
      );
      const env = { ENV_FILE: '', WORKER_CONCURRENCY: '2' };
      const server = await spawnServer(env, 10_000, {
        cwd: tmp.dir,
        command: [process.execPath, path.join(root, 'dist', 'server', 'main.js')],
      });
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      expect(server.stderr()).toContain(`Data: ${dataDir}`);
      expect(await server.stop()).toBe(0);
      const cli = await run(
        process.execPath,
        [path.join(root, 'server', 'bin', 'b24hooks.js'), 'status', '--json'],
        { cwd: tmp.dir, env: { PATH: process.env.PATH ?? '', WORKER_CONCURRENCY: '2' } },
      );
      expect(JSON.parse(cli.stdout).total).toBeDefined();
      expect(fs.existsSync(path.join(dataDir, 'b24hooks.sqlite'))).toBe(true);
    } finally {
      tmp.cleanup();
    }
  });
});
