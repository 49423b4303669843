import type { Deps } from '../deps.js';
import type { Parts } from '../start.js';

/** Every route the app mounts, in one list (manifest handlers included). */
export function appParts(_deps: Deps): Parts {
  return { routes: [], fast: [] };
}
