import fs from 'node:fs';
import path from 'node:path';
import { portalEvents } from '../../db/stores/portals.js';
import { getRuleMap } from '../../db/stores/rules.js';
import { requirePortal, type CommandContext } from '../cli/commands.js';
import { UsageError } from '../cli/io.js';
import { checkMap, type MapWarning } from './check-map.js';
import { grantedScopes } from '../bitrix/scopes.js';
import { withScopeErrors } from './scopes.js';
import { saveMapSealed } from './saved-map.js';
import { maskMap, revealMap } from './secret-fields.js';
import { formatMapErrors, validateEventMap, type ValidationResult } from './validate.js';

type Command = (ctx: CommandContext) => Promise<number>;

const portalFlag = (ctx: CommandContext): string | undefined => {
  const v = ctx.flags.portal;
  if (v === true) throw new UsageError('--portal needs a value');
  return typeof v === 'string' ? v : undefined;
};

/** Events the map's rules can fire on: the portal's bound events, or the install default. */
async function boundEvents(
  ctx: CommandContext,
  memberId: string | undefined,
): Promise<string[] | undefined> {
  if (memberId === undefined) return [...(ctx.deps.config.b24.events ?? ctx.deps.manifest.events)];
  const bound = portalEvents(await requirePortal(ctx.deps, memberId));
  return bound.length > 0 ? bound : undefined;
}

const warningLines = (warnings: readonly MapWarning[]) =>
  warnings.map((w) => `warning: ${w.message}\n`).join('');

/**
 * `rules import FILE [--portal MEMBER_ID]`: validates the file and stores it as the default map
 * or the portal's own. Every problem is printed with its JSON path (exit 1); map warnings
 * (rules writing the same field, self-triggering rules) go to stderr and do not block.
 */
export async function rulesImportCommand(ctx: CommandContext): Promise<number> {
  const { deps, io, json } = ctx;
  const file = ctx.positionals[1];
  if (!file) throw new UsageError('rules import needs a FILE (the event map as JSON)');
  if (ctx.positionals.length > 2)
    throw new UsageError(`unexpected argument "${ctx.positionals[2]}"`);
  const memberId = portalFlag(ctx);
  const portal = memberId === undefined ? undefined : await requirePortal(deps, memberId);
  let text: string;
  try {
    text = fs.readFileSync(path.resolve(file), 'utf8');
  } catch (e) {
    io.err(
      `b24hooks rules import: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}\n`,
    );
    return 1;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    io.err(`b24hooks rules import: ${file} is not JSON: ${(e as Error).message}\n`);
    return 1;
  }
  const checked = validateEventMap(doc);
  const scoped: ValidationResult = checked.ok
    ? withScopeErrors(checked.map, grantedScopes(deps.manifest.scopes, portal?.scope))
    : checked;
  // Credentials are encrypted as they are stored; "********" keeps what the scope stored.
  const result = scoped.ok ? await saveMapSealed(deps, memberId, scoped.map) : scoped;
  if (!result.ok) {
    const n = result.errors.length;
    if (json) {
      io.out(JSON.stringify({ ok: false, errors: result.errors }) + '\n');
      io.err(
        `b24hooks rules import: ${file} is not a valid event map (${n} problem${n > 1 ? 's' : ''})\n`,
      );
    } else {
      io.err(
        `b24hooks rules import: ${file} is not a valid event map (${n} problem${n > 1 ? 's' : ''}):\n` +
          formatMapErrors(result.errors).replace(/^/gm, '  ') +
          '\n',
      );
    }
    return 1;
  }
  const warnings = checkMap(result.map, { boundEvents: await boundEvents(ctx, memberId) });
  io.err(warningLines(warnings));
  const scope = memberId ?? 'default';
  const count = result.map.rules.length;
  if (json) io.out(JSON.stringify({ ok: true, scope, rules: count, warnings }) + '\n');
  else {
    io.out(
      `imported ${count} rule${count === 1 ? '' : 's'} as ${memberId ? `the own map of portal ${memberId}` : 'the default map'}\n`,
    );
  }
  return 0;
}

/**
 * `rules export [--portal MEMBER_ID] [--with-secrets]`: the map as JSON on stdout, ready for
 * `rules import`. A portal without a map of its own exports the default it uses (noted on
 * stderr). Credentials are masked ("********", which `rules import` into the same scope
 * reads as "keep what is stored") unless `--with-secrets` asks for them in clear; `$env`
 * references are exported as they are.
 */
export async function rulesExportCommand(ctx: CommandContext): Promise<number> {
  const { deps, io } = ctx;
  const memberId = portalFlag(ctx);
  if (ctx.positionals.length > 1)
    throw new UsageError(`unexpected argument "${ctx.positionals[1]}"`);
  let map = undefined;
  if (memberId !== undefined) {
    await requirePortal(deps, memberId);
    map = await getRuleMap(deps.db, memberId);
    if (!map) io.err(`portal ${memberId} has no map of its own; this is the default map it uses\n`);
  }
  map ??= (await getRuleMap(deps.db)) ?? { rules: [] };
  const shown =
    ctx.flags['with-secrets'] === true ? revealMap(map, deps.box) : maskMap(map, deps.box);
  io.out(JSON.stringify(shown, null, 2) + '\n');
  return 0;
}

/** The shape run.ts keeps in COMMANDS. */
export interface RulesCommandSpec {
  run: Command;
  options: Record<string, { type: 'string' | 'boolean' }>;
  usage: string;
}

/**
 * The `rules` command with its subcommands. `rules test` (the dry run) needs the event
 * processor, so it is passed in: `rulesCommandSpec({ test: rulesTestCommand })`.
 */
export function rulesCommandSpec(extra: Record<string, Command> = {}): RulesCommandSpec {
  const subcommands: Record<string, Command> = {
    import: rulesImportCommand,
    export: rulesExportCommand,
    ...extra,
  };
  return {
    run: async (ctx) => {
      const sub = ctx.positionals[0];
      const run = sub === undefined ? undefined : subcommands[sub];
      if (!run) {
        throw new UsageError(
          `${sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`}; expected ${Object.keys(subcommands).join(', ')}`,
        );
      }
      return run(ctx);
    },
    options: {
      portal: { type: 'string' },
      event: { type: 'string' },
      id: { type: 'string' },
      'with-secrets': { type: 'boolean' },
    },
    usage:
      'rules import FILE [--portal MEMBER_ID] | rules export [--portal MEMBER_ID] [--with-secrets] | rules test --portal MEMBER_ID --event NAME --id ENTITY_ID',
  };
}
