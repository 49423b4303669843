import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Keys whose values never reach a log line, at any of the first few nesting levels. */
export const SECRET_KEYS = [
  'access_token',
  'refresh_token',
  'application_token',
  'accessToken',
  'refreshToken',
  'applicationToken',
  'AUTH_ID',
  'REFRESH_ID',
  'APPLICATION_TOKEN',
  'auth',
  'client_secret',
  'clientSecret',
  'password',
  'pass',
  'secret',
  'token',
  'authorization',
  'cookie',
  'set-cookie',
  'webhookUrl',
  'smtpUrl',
  'botToken',
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of SECRET_KEYS) {
    const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
    const join = (prefix: string) => (key.startsWith('[') ? `${prefix}${key}` : `${prefix}.${key}`);
    paths.push(key.startsWith('[') ? key.slice(2, -2) : key);
    paths.push(join('*'), join('*.*'), join('*.*.*'));
  }
  return paths;
}

/**
 * Fields of a database error that quote the values of the row it refused: PostgreSQL's
 * `detail` ("Key (scope, key)=(p1, alice@example.com) already exists."), `where` and
 * `internalQuery`; a driver's bound values. Their message and SQL (placeholders only, see
 * db/connect.ts) say what failed; the values are e-mail addresses, chat ids, event bodies.
 */
const VALUE_FIELDS = ['detail', 'where', 'internalQuery', 'bindings', 'parameters'] as const;

/** pino's error serializer, without the fields that quote stored values. */
function errWithoutValues(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown;
  if (out !== err) dropValueFields(out, 3);
  return out;
}

/** Removes VALUE_FIELDS from a serialized error and the errors serialized inside it. */
function dropValueFields(o: unknown, depth: number): void {
  if (depth === 0 || o === null || typeof o !== 'object') return;
  const r = o as Record<string, unknown>;
  for (const k of VALUE_FIELDS) delete r[k];
  for (const [k, v] of Object.entries(r)) if (k !== 'raw') dropValueFields(v, depth - 1);
}

/** Structured JSON logs on stdout (or the given stream), secrets redacted. */
export function createLogger(
  level: string,
  destination?: DestinationStream,
  base: Record<string, unknown> = {},
): Logger {
  return pino(
    {
      level,
      base: { app: 'b24hooks', ...base },
      redact: { paths: redactPaths(), censor: '[redacted]' },
      serializers: { err: errWithoutValues },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

export const silentLogger = (): Logger => pino({ level: 'silent' });
