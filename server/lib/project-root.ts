import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root (where manifest.json, views/ and placement/ live), found by walking up
 * from this file, so it works the same from server/ (tests) and dist/server/ (built).
 */
export function projectRoot(from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (
      fs.existsSync(path.join(dir, 'manifest.json')) &&
      fs.existsSync(path.join(dir, 'package.json'))
    ) {
      return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no project root (manifest.json) above ${from}`);
    dir = parent;
  }
}
