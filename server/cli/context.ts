import { EVENT_STATUSES, type EventStatus } from '../../db/stores/events.js';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import type { Env } from '../config.js';
import type { Deps } from '../deps.js';
import { UsageError, type CliIo } from './io.js';

export type Flags = Record<string, string | boolean | undefined>;

/** What every command gets: the deps, its parsed flags and positionals, where to write. */
export interface CommandContext {
  deps: Deps;
  flags: Flags;
  positionals: string[];
  /** The environment the CLI was started with (rotate-key reads where the key came from). */
  env?: Env;
  json: boolean;
  io: CliIo;
}

/** A command: resolves to the exit code (0 success, 1 failure; bad usage throws UsageError). */
export type Command = (ctx: CommandContext) => Promise<number>;

/** A command as run.ts lists it: what runs, the options it parses, its usage line. */
export interface CommandSpec {
  run: Command;
  options: Record<string, { type: 'string' | 'boolean' }>;
  usage: string;
  /** Bare arguments the command takes (a subcommand, a file); more is bad usage. Default 0. */
  positionals?: number;
}

/** A string flag's value; `--name` given without a value is bad usage. */
export const str = (flags: Flags, name: string): string | undefined => {
  const v = flags[name];
  if (v === true) throw new UsageError(`--${name} needs a value`);
  return typeof v === 'string' ? v : undefined;
};

export function parseStatus(value: string | undefined): EventStatus | undefined {
  if (value === undefined) return undefined;
  if (!(EVENT_STATUSES as readonly string[]).includes(value)) {
    throw new UsageError(`--status must be one of ${EVENT_STATUSES.join(', ')}, got "${value}"`);
  }
  return value as EventStatus;
}

/** Resolves `--portal MEMBER_ID` to a stored portal or fails with a usage error. */
export async function requirePortal(deps: Deps, memberId: string) {
  const portal = await findPortalByMemberId(deps.db, memberId);
  if (!portal) throw new UsageError(`no portal with member_id "${memberId}"`);
  return portal;
}
