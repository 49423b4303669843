import type { Deps } from '../deps.js';
import type { FastRoute, Parts } from '../http-server.js';
import type { Worker } from '../queue/worker.js';
import type { Recovery } from '../recovery/index.js';
import { uiRoutes } from '../ui/routes.js';
import { installRoutes } from './install.js';

/** What the routes take from the running services (server/services.ts builds them). */
export interface RouteServices {
  readonly intake: { readonly route: FastRoute };
  readonly worker: Pick<Worker, 'notify'>;
  readonly recovery: Pick<Recovery, 'sweeper'>;
}

/** Every route the app mounts, in one list (manifest handlers included). */
export function appParts(deps: Deps, services: RouteServices): Parts {
  return {
    routes: [
      installRoutes(deps),
      uiRoutes(deps, {
        notifyWorker: () => services.worker.notify(),
        sweeper: services.recovery.sweeper,
      }),
    ],
    fast: [services.intake.route],
  };
}
