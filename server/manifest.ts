import fs from 'node:fs';
import path from 'node:path';

/** manifest.json at the repository root: the server mounts what it names. */
export interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly scopes: readonly string[];
  readonly handlers: { readonly install: string; readonly app: string; readonly events: string };
  readonly placements: ReadonlyArray<{ code: string; handler: string; title: string }>;
  readonly events: readonly string[];
}

export function parseManifest(raw: unknown): Manifest {
  const problems: string[] = [];
  const m = raw as Partial<Manifest> | null;
  if (!m || typeof m !== 'object') throw new Error('manifest.json: expected an object');
  if (typeof m.name !== 'string') problems.push('name: expected a string');
  if (typeof m.version !== 'string') problems.push('version: expected a string');
  if (!Array.isArray(m.scopes)) problems.push('scopes: expected an array of strings');
  const h = m.handlers as Partial<Manifest['handlers']> | undefined;
  for (const k of ['install', 'app', 'events'] as const) {
    if (typeof h?.[k] !== 'string' || !h[k].startsWith('/')) {
      problems.push(`handlers.${k}: expected a path starting with /`);
    }
  }
  if (!Array.isArray(m.placements)) problems.push('placements: expected an array');
  else
    m.placements.forEach((p, i) => {
      if (typeof p?.code !== 'string') problems.push(`placements[${i}].code: expected a string`);
      if (typeof p?.handler !== 'string' || !p.handler.startsWith('/')) {
        problems.push(`placements[${i}].handler: expected a path starting with /`);
      }
    });
  if (!Array.isArray(m.events)) problems.push('events: expected an array of event names');
  if (problems.length) throw new Error(`manifest.json is invalid:\n  - ${problems.join('\n  - ')}`);
  return m as Manifest;
}

export function loadManifest(root: string): Manifest {
  return parseManifest(JSON.parse(fs.readFileSync(path.join(root, 'manifest.json'), 'utf8')));
}
