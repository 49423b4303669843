import type { Deps } from '../deps.js';
import { toError } from '../lib/errors.js';
import { claimLapse, releaseLapse, resumedLapses } from '../../db/stores/lapses.js';
import { SweepRefusedError, type Sweeper } from './sweep.js';

/**
 * A portal's payment lapse, swept once its plan takes the app back. While an app's payment
 * has expired Bitrix24 skips every handler of it, offline ones included (CORE rest
 * lib/event/callback.php `__callStatic`, PAYMENT_EXPIRED; lib/app.php `getAppStatusInfo`),
 * so the changes of that time never reach us and are never kept for us: the pause for
 * PAYMENT_REQUIRED (server/bitrix/refresh.ts `pausePortal`) marks since when
 * (`portals.lapse_since`, the portal's last delivery before), and here, on the heartbeat,
 * each portal installed and no longer paused with a mark is swept from it, as a downtime
 * gap is, by the one instance that clears the mark. Returns how many sweeps began.
 */
export async function sweepResumedLapses(
  deps: Pick<Deps, 'db' | 'logger'>,
  sweeper: Sweeper,
  marginMs: number,
): Promise<number> {
  let begun = 0;
  for (const lapse of await resumedLapses(deps.db)) {
    if (!(await claimLapse(deps.db, lapse))) continue;
    try {
      const { done } = await sweeper.begin({
        since: lapse.lapse_since,
        memberId: lapse.member_id,
        trigger: 'resume',
        marginMs,
      });
      begun++;
      // A sweep stopped by a shutdown leaves the mark for the next start's beats (one that
      // failed on the portal is on the dashboard, for an admin's sweep; a process that dies
      // meanwhile loses it).
      void done
        .then(async (gap) => {
          const stopped = [gap.error, ...gap.portals.map((p) => p.error)].some((e) =>
            /^interrupted/.test(e ?? ''),
          );
          if (gap.status !== 'done' && stopped) await releaseLapse(deps.db, lapse);
        })
        .catch(async () => releaseLapse(deps.db, lapse))
        .catch((e: unknown) =>
          deps.logger.warn(
            { memberId: lapse.member_id, err: toError(e).message },
            'the mark of an unfinished lapse sweep was not put back',
          ),
        );
      deps.logger.warn(
        { memberId: lapse.member_id, since: new Date(lapse.lapse_since).toISOString() },
        "the portal's plan takes the app again: sweeping the lapse for changes Bitrix24 did not send",
      );
    } catch (e) {
      // Another sweep of the portal is running: the next beat tries again.
      await releaseLapse(deps.db, lapse);
      if (!(e instanceof SweepRefusedError)) {
        deps.logger.warn(
          { memberId: lapse.member_id, err: toError(e).message },
          'the sweep of a payment lapse did not start; tried again at the next heartbeat',
        );
      }
    }
  }
  return begun;
}
