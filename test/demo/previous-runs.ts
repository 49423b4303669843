import { hastenPortalJobs } from '../../db/stores/jobs.js';
import { listPortals, markPortalUninstalled } from '../../db/stores/portals.js';
import type { Deps } from '../../server/deps.js';

/**
 * The emulated portals of earlier demo runs on this data. Each run's emulator, its deals and
 * tokens and the stand-ins went with that run (the next one listens on other ports), so
 * nothing of theirs can succeed again: their events used to retry against a dead emulator
 * for hours, and kept the backlog up. They are marked uninstalled, their credentials dropped
 * as Bitrix24's uninstall would have them, and their waiting jobs made due, so each of their
 * unfinished events ends `skipped` ("portal is not installed") at once. Their log stays.
 * Only portals the demo can have installed are touched: those on 127.0.0.1 (its
 * `B24_PORTAL_HOSTS`). Returns their member ids.
 */
export async function retirePreviousPortals(deps: Deps): Promise<string[]> {
  const now = deps.clock.now().getTime();
  const retired: string[] = [];
  for (const p of await listPortals(deps.db)) {
    if (p.status === 'uninstalled' || !p.domain.startsWith('127.0.0.1:')) continue;
    await markPortalUninstalled(deps.db, p.id, now);
    await hastenPortalJobs(deps.db, p.id, now);
    deps.portals.invalidate(p.member_id);
    retired.push(p.member_id);
  }
  return retired;
}
