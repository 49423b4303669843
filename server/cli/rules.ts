import fs from 'node:fs';
import path from 'node:path';
import { portalEvents } from '../../db/stores/portals.js';
import { getSnapshot } from '../../db/stores/processing.js';
import { effectiveMap, getRuleMap } from '../rules/map-store.js';
import { grantedScopes } from '../bitrix/scopes.js';
import { entityOf } from '../intake/entity.js';
import { createEntityReader } from '../processing/entity-reader.js';
import { checkMap, type MapWarning } from '../rules/check-map.js';
import { serverChannels } from '../config/warnings.js';
import { eventTypo, isBindableEvent } from '../config/bitrix-events.js';
import { dryRun } from '../rules/dry-run.js';
import { relatedToLoad } from '../rules/needs.js';
import { saveMapSealed } from '../rules/saved-map.js';
import { withScopeErrors } from '../rules/scopes.js';
import { maskMap, revealMap } from '../rules/secret-fields.js';
import { formatMapErrors, validateEventMap, type ValidationResult } from '../rules/validate.js';
import type { EventMap } from '../rules/model.js';
import {
  requirePortal,
  str,
  type Command,
  type CommandContext,
  type CommandSpec,
} from './context.js';
import { UsageError, type CliIo } from './io.js';

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
 * `rules import FILE [--portal MEMBER_ID] [--dry-run]`: validates the file and stores it as the
 * default map or the portal's own; with `--dry-run`, checks it the same way (credentials and
 * `$env` names included), says which rules it would add, remove and change, and stores
 * nothing. Every problem is printed with its JSON path (exit 1); map warnings (rules writing
 * the same field, self-triggering rules) go to stderr and do not block.
 */
export async function rulesImportCommand(ctx: CommandContext): Promise<number> {
  const { deps, io, json } = ctx;
  const file = ctx.positionals[1];
  if (!file) throw new UsageError('rules import needs a FILE (the event map as JSON)');
  if (ctx.positionals.length > 2)
    throw new UsageError(`unexpected argument "${ctx.positionals[2]}"`);
  const memberId = str(ctx.flags, 'portal');
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
  const dryRun = ctx.flags['dry-run'] === true;
  // What the scope holds now (the portal's own map, or the default it uses), to say what
  // a dry run would change.
  const before = dryRun
    ? ((memberId === undefined ? undefined : await getRuleMap(deps.db, memberId)) ??
      (await getRuleMap(deps.db)) ?? { rules: [] })
    : undefined;
  // Credentials are encrypted as they are stored; "********" keeps what the scope stored.
  const result = scoped.ok ? await saveMapSealed(deps, memberId, scoped.map, { dryRun }) : scoped;
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
  const warnings = checkMap(result.map, {
    boundEvents: await boundEvents(ctx, memberId),
    settleMs: ctx.deps.config.worker.settleMs,
    stepTimeoutMaxMs: ctx.deps.config.worker.stepTimeoutMaxMs,
    channels: serverChannels(ctx.deps.config),
  });
  io.err(warningLines(warnings));
  const scope = memberId ?? 'default';
  const count = result.map.rules.length;
  const target = memberId ? `the own map of portal ${memberId}` : 'the default map';
  if (before) {
    const change = ruleChanges(maskMap(before, deps.box), maskMap(result.map, deps.box));
    if (json) {
      io.out(
        JSON.stringify({ ok: true, dryRun: true, scope, rules: count, ...change, warnings }) + '\n',
      );
    } else {
      const names = (list: string[]) => (list.length ? list.join(', ') : 'none');
      io.out(
        `${file} is a valid event map of ${count} rule${count === 1 ? '' : 's'}; nothing was stored (--dry-run).\n` +
          `Imported, it would replace ${target}: rules added ${names(change.added)}; removed ${names(change.removed)}; changed ${names(change.changed)}` +
          ' (a changed credential is not shown).\n',
      );
    }
    return 0;
  }
  if (json) io.out(JSON.stringify({ ok: true, scope, rules: count, warnings }) + '\n');
  else {
    io.out(`imported ${count} rule${count === 1 ? '' : 's'} as ${target}\n`);
  }
  return 0;
}

/** Rules by name that a map adds, removes and changes against another (both masked). */
function ruleChanges(before: EventMap, after: EventMap) {
  const was = new Map(before.rules.map((r) => [r.name, JSON.stringify(r)]));
  const added: string[] = [];
  const changed: string[] = [];
  for (const r of after.rules) {
    const old = was.get(r.name);
    if (old === undefined) added.push(r.name);
    else if (old !== JSON.stringify(r)) changed.push(r.name);
    was.delete(r.name);
  }
  return { added, removed: [...was.keys()], changed };
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
  const memberId = str(ctx.flags, 'portal');
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
    ctx.flags['with-secrets'] === true
      ? revealMap(map, deps.box, { operator: true })
      : maskMap(map, deps.box);
  io.out(JSON.stringify(shown, null, 2) + '\n');
  return 0;
}

/** `rules test --portal M --event E --id N`: which rules match and what they would send. Sends nothing. */
export async function rulesTestCommand(ctx: CommandContext): Promise<number> {
  const { deps, io, json } = ctx;
  const memberId = str(ctx.flags, 'portal');
  const eventName = str(ctx.flags, 'event')?.toUpperCase();
  const id = str(ctx.flags, 'id');
  if (!memberId || !eventName || !id)
    throw new UsageError('rules test needs --portal, --event and --id');
  // A misspelt event matches no rule and says only "not triggered by": name the one meant, as
  // `rules import` does.
  const meant = isBindableEvent(eventName) ? undefined : eventTypo(eventName);
  if (meant) throw new UsageError(`Bitrix24 sends no event ${eventName}; did you mean ${meant}?`);
  const assume = ctx.flags['assume-change'] === true;
  const portal = await requirePortal(deps, memberId);
  // A dry run never opens credentials: the steps show them masked.
  const map = maskMap(await effectiveMap(deps.db, memberId), deps.box);
  // A per-type smart-process name (ONCRMDYNAMICITEMUPDATE_128) names the type; rules are
  // written on the plain event name, which is what Bitrix24 delivers with ENTITY_TYPE_ID.
  const perType = /^(ONCRMDYNAMICITEM(?:ADD|UPDATE|DELETE))_(\d+)$/.exec(eventName);
  const ruleEvent = perType?.[1] ?? eventName;
  const { type } = entityOf(eventName, { FIELDS: { ID: id, ENTITY_TYPE_ID: perType?.[2] } });
  if (!type) throw new UsageError(`cannot tell which entity ${eventName} is about`);
  const reader = createEntityReader(deps);
  const entity = /DELETE$/.test(ruleEvent)
    ? { ID: id }
    : await reader.read(portal, type, id, Number.MAX_SAFE_INTEGER);
  if (entity === null) {
    io.err(`b24hooks rules test: ${type} ${id} does not exist on ${portal.domain}\n`);
    return 1;
  }
  const rules = map.rules.filter((r) => r.on.includes(ruleEvent));
  const related: Record<string, Record<string, unknown> | undefined> = {};
  for (const root of relatedToLoad(rules)) {
    const rid = entity?.[`${root.toUpperCase()}_ID`] ?? entity?.[`${root}Id`];
    if (rid && rid !== '0')
      related[root] =
        (await reader.read(portal, root, String(rid), Number.MAX_SAFE_INTEGER)) ?? undefined;
  }
  const previous = await getSnapshot(deps.db, portal.id, type, id);
  const input = {
    event: { name: ruleEvent, memberId, entityType: type, entityId: id },
    entity: entity ?? undefined,
    previous,
    related,
    portal: { domain: portal.domain, memberId },
  };
  // The builder's "Try it" shows a rule on a change (`becomes`, `changed`) as it runs when
  // that change happens; here with --assume-change, and a hint without it.
  // One run: without the flag, a rule that matches only as when its change happens reads as
  // it does now (its reason now is `assumed.now`), with the hint.
  const tried = dryRun(map, input, { assumeChange: true });
  const results = assume
    ? tried
    : tried.map((r) => (r.assumed ? { rule: r.rule, matched: false, reason: r.assumed.now } : r));
  const onChange = new Set(assume ? [] : tried.filter((r) => r.assumed).map((r) => r.rule));
  if (json)
    io.out(
      JSON.stringify({
        portal: memberId,
        event: eventName,
        entity: { type, id },
        previous: previous ?? null,
        rules: results,
      }) + '\n',
    );
  else printDryRun(io, results, previous, onChange);
  return 0;
}

function printDryRun(
  io: CliIo,
  results: ReturnType<typeof dryRun>,
  previous: unknown,
  onChange: ReadonlySet<string>,
) {
  io.out(
    `snapshot: ${previous === undefined ? 'none (first sighting)' : JSON.stringify(previous)}\n`,
  );
  if (results.length === 0) io.out('no rules in the map\n');
  for (const r of results) {
    const when = r.assumed ? ` (as when this change happens; now: ${r.assumed.now})` : '';
    io.out(`${r.matched ? 'MATCH' : 'no   '} ${r.rule}: ${r.reason}${when}\n`);
    if (onChange.has(r.rule)) {
      io.out('      matches when this change happens: --assume-change shows what it sends\n');
    }
    for (const s of r.steps ?? []) {
      io.out(
        `      ${s.index + 1}. ${s.type}${s.name ? ` (${s.name})` : ''}: ${s.error ? `ERROR ${s.error}` : JSON.stringify(s.rendered)}\n`,
      );
    }
  }
}

/** The `rules` command with its subcommands: import, export and test (the dry run). */
export function rulesCommandSpec(): CommandSpec {
  const subcommands: Record<string, Command> = {
    import: rulesImportCommand,
    export: rulesExportCommand,
    test: rulesTestCommand,
  };
  // The options each subcommand takes: another's is bad usage, not silently ignored.
  const takes: Record<string, readonly string[]> = {
    import: ['portal', 'dry-run'],
    export: ['portal', 'with-secrets'],
    test: ['portal', 'event', 'id', 'assume-change'],
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
      const wrong = Object.keys(ctx.flags).find(
        (f) => f !== 'json' && f !== 'help' && !takes[sub!]!.includes(f),
      );
      if (wrong) throw new UsageError(`rules ${sub} does not take --${wrong}`);
      return run(ctx);
    },
    positionals: 2,
    options: {
      portal: { type: 'string' },
      event: { type: 'string' },
      id: { type: 'string' },
      'with-secrets': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      'assume-change': { type: 'boolean' },
    },
    usage:
      'rules import FILE [--portal MEMBER_ID] [--dry-run] | rules export [--portal MEMBER_ID] [--with-secrets] | rules test --portal MEMBER_ID --event NAME --id ENTITY_ID [--assume-change]',
  };
}
