import type { Deps } from '../deps.js';
import { createIntake, type Intake } from '../intake/intake.js';
import type { BatchWriter } from '../intake/writer.js';
import type { Parts } from '../start.js';

/** Long-lived parts shared by routes and background work. */
export interface Services {
  readonly intake: Intake;
}

export function createServices(deps: Deps, opts: { intakeWriter?: BatchWriter } = {}): Services {
  return { intake: createIntake(deps, { writer: opts.intakeWriter }) };
}

/** Every route the app mounts, in one list (manifest handlers included). */
export function appParts(_deps: Deps, services: Services): Parts {
  return { routes: [], fast: [services.intake.route] };
}
