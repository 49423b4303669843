import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Env } from '../config.js';
import { createDeps, type Deps, type DepsOverrides } from '../deps.js';
import { ConfigError } from '../lib/errors.js';
import { describeConnectError } from '../../db/connect-error.js';
import type { DbTarget } from '../../db/connect.js';
import { createLogger } from '../lib/logger.js';
import { loadConfigWithSecrets, SECRETS_FILE, sqliteFileOf } from '../secrets.js';
import { eventsCommand, migrateCommand, portalsCommand, statusCommand } from './commands.js';
import type { CommandContext, CommandSpec } from './context.js';
import { connectWebhookCommand, disconnectWebhookCommand } from './connect-webhook.js';
import { recoverCommand } from './recover.js';
import { replayCommand } from './replay.js';
import { eraseCommand, pruneCommand } from './retention.js';
import { rollupsCommand } from './rollups.js';
import { rotateKeyCommand } from './rotate-key.js';
import { rulesCommandSpec } from './rules.js';
import { UsageError, type CliIo } from './io.js';
import { backfillMatchSla } from '../rules/sla-rules.js';

const COMMANDS: Record<string, CommandSpec> = {
  migrate: { run: migrateCommand, options: {}, usage: 'migrate' },
  status: { run: statusCommand, options: {}, usage: 'status' },
  events: {
    run: eventsCommand,
    options: {
      portal: { type: 'string' },
      event: { type: 'string' },
      status: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      limit: { type: 'string' },
    },
    usage:
      'events [--portal MEMBER_ID] [--event NAME] [--status S] [--from ISO] [--to ISO] [--limit N]',
  },
  portals: { run: portalsCommand, options: {}, usage: 'portals' },
  rules: rulesCommandSpec(),
  replay: {
    run: replayCommand,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      event: { type: 'string' },
      portal: { type: 'string' },
      status: { type: 'string' },
      'dry-run': { type: 'boolean' },
      'rerun-succeeded': { type: 'boolean' },
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
    },
    usage:
      'replay --from ISO --to ISO [--event NAME] [--portal MEMBER_ID] [--status S] [--dry-run] [--rerun-succeeded] [--wait [--timeout SECONDS]]',
  },
  'connect-webhook': {
    run: connectWebhookCommand,
    options: {
      'webhook-url': { type: 'string' },
      'application-token': { type: 'string' },
      'member-id': { type: 'string' },
      domain: { type: 'string' },
    },
    usage:
      'connect-webhook --webhook-url URL --application-token TOKEN --member-id MEMBER_ID [--domain D]',
  },
  'disconnect-webhook': {
    run: disconnectWebhookCommand,
    options: { portal: { type: 'string' } },
    usage: 'disconnect-webhook --portal MEMBER_ID',
  },
  rollups: { run: rollupsCommand, options: {}, usage: 'rollups rebuild', positionals: 1 },
  recover: {
    run: recoverCommand,
    options: { since: { type: 'string' }, portal: { type: 'string' } },
    usage: 'recover sweep [--since ISO] [--portal MEMBER_ID]',
    positionals: 1,
  },
  prune: {
    run: pruneCommand,
    options: {
      'dry-run': { type: 'boolean' },
      portal: { type: 'string' },
      vacuum: { type: 'boolean' },
    },
    usage: 'prune [--dry-run] [--portal MEMBER_ID] [--vacuum]',
  },
  erase: {
    run: eraseCommand,
    options: { portal: { type: 'string' }, entity: { type: 'string' } },
    usage: 'erase --portal MEMBER_ID [--entity TYPE:ID]',
  },
  'rotate-key': {
    run: rotateKeyCommand,
    options: { 'new-key-file': { type: 'string' }, force: { type: 'boolean' } },
    usage: 'rotate-key [--new-key-file FILE] [--force]',
  },
};

export function usageText(): string {
  return (
    'usage: b24hooks <command> [options] [--json]\n' +
    Object.values(COMMANDS)
      .map((c) => `  b24hooks ${c.usage}`)
      .join('\n') +
    '\n'
  );
}

/**
 * Commands that only read. On a data dir or database that is not there, or is older than
 * this release, they say so; they used to create a new empty one (and print all zeros), or
 * apply the migrations unasked, under servers of the old release still running.
 */
const READ_ONLY = new Set(['status', 'events', 'portals']);

/** For a read-only command: the SQLite file and the key it was written with must exist. */
function requireExistingData(dataDir: string, env: Env): void {
  const file = sqliteFileOf(dataDir, env);
  if (file) {
    if (!fs.existsSync(file)) {
      throw new Error(
        `no database at ${file}: is DATA_DIR (or DATABASE_URL) right? ` +
          '`b24hooks migrate` or the server creates one',
      );
    }
  }
  const keyed = env.SESSION_SECRET?.trim() && env.TOKEN_ENCRYPTION_KEY?.trim();
  if (!keyed && !fs.existsSync(path.join(dataDir, SECRETS_FILE))) {
    throw new Error(
      `no ${SECRETS_FILE} in ${dataDir} and SESSION_SECRET / TOKEN_ENCRYPTION_KEY are not both set: ` +
        `the key this database was written with is elsewhere (restore ${SECRETS_FILE} with the database)`,
    );
  }
}

/**
 * The operator CLI. Results go to stdout (one JSON document with --json), logs to stderr.
 * Exit 0 on success, 1 on failure, 2 on bad usage with a one-line reason on stderr.
 */
export async function runCli(
  argv: string[],
  env: Env,
  io: CliIo,
  overrides: DepsOverrides = {},
): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === 'help' || name === '-h') {
    (name ? io.out : io.err)(usageText());
    return name ? 0 : 2;
  }
  const spec = COMMANDS[name];
  if (!spec) {
    io.err(`b24hooks: unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...spec.options, json: { type: 'boolean' }, help: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    // Node's own text for an unknown option goes on about positionals after "--", which
    // no command here takes that way: name the option and what the command does take.
    const message = (e as Error).message;
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    // `--limit -5`: Node reads -5 as an option and calls the value "ambiguous".
    const dashed = /^Option '([^' ]+)[^']*' argument is ambiguous/.exec(message);
    const missing = /^Option '([^' ]+)[^']*' argument missing/.exec(message);
    io.err(
      `b24hooks ${name}: ` +
        (unknown
          ? `unknown option ${unknown[1]}; usage: b24hooks ${spec.usage} [--json]`
          : dashed
            ? `${dashed[1]} is followed by something starting with "-", taken for an option: write a value that starts with "-" as ${dashed[1]}=-…`
            : missing
              ? `${missing[1]} needs a value; usage: b24hooks ${spec.usage} [--json]`
              : message.split('\n')[0]) +
        '\n',
    );
    return 2;
  }
  if (parsed.values.help) {
    io.out(`usage: b24hooks ${spec.usage} [--json]\n`);
    return 0;
  }
  const extra = parsed.positionals[spec.positionals ?? 0];
  if (extra !== undefined) {
    io.err(
      `b24hooks ${name}: unexpected argument "${extra}"; usage: b24hooks ${spec.usage} [--json]\n`,
    );
    return 2;
  }
  let deps: Deps | undefined;
  let database: DbTarget | undefined;
  const readOnly = READ_ONLY.has(name);
  try {
    const dataDir = path.resolve(env.DATA_DIR?.trim() || './data');
    // Only `migrate` (and the server) make a database: any other command on a data dir that
    // is not there (a wrong DATA_DIR, another working directory) made a new empty one and a
    // new key, then reported success: an empty `rules export` as a backup, `would remove: 0
    // rows` from a dry run.
    if (name !== 'migrate') requireExistingData(dataDir, env);
    const config = loadConfigWithSecrets(env, dataDir);
    database = config.database;
    deps = await createDeps(config, {
      logger: createLogger(
        config.logLevel === 'info' ? 'warn' : config.logLevel,
        process.stderr as never,
      ),
      knexLogger: createLogger(
        config.logLevel === 'debug' ? 'debug' : 'error',
        process.stderr as never,
      ),
      skipMigrations: name === 'migrate',
      readOnly,
      beforeRecount: backfillMatchSla,
      ...overrides,
    });
    return await spec.run({
      deps,
      flags: parsed.values as CommandContext['flags'],
      positionals: parsed.positionals,
      env,
      json: parsed.values.json === true,
      io,
    });
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`b24hooks ${name}: ${e.message}\n`);
      return 2;
    }
    const msg =
      e instanceof ConfigError
        ? e.problems.join('; ')
        : // A command's own EACCES (a file it reads) is not the database's: `!deps`.
          ((database && describeConnectError(e, database, !deps)) ?? (e as Error).message);
    io.err(`b24hooks ${name}: ${msg.split('\n')[0]}\n`);
    return 1;
  } finally {
    await deps?.close();
  }
}
