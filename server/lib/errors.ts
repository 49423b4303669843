export type ErrorCode =
  | 'BAD_REQUEST'
  | 'BAD_EVENT_BODY'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNKNOWN_PORTAL'
  | 'TOKEN_MISMATCH'
  | 'FORBIDDEN'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'NOT_ALLOWED_HOST'
  | 'BITRIX_API'
  | 'CONFIG'
  | 'VALIDATION'
  | 'INTERNAL';

/** Base error: a machine-readable `code`, the HTTP `status` it maps to, and a native `cause`. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Whether the message may be shown to the client as is. */
  readonly expose: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: { status?: number; cause?: unknown; expose?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = options.status ?? 500;
    this.expose = options.expose ?? this.status < 500;
  }
}

export class BadRequestError extends AppError {
  constructor(message: string, code: ErrorCode = 'BAD_REQUEST') {
    super(code, message, { status: 400 });
  }
}

export class ConfigError extends AppError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`, { status: 500 });
    this.problems = problems;
  }
}

/** Normalises anything thrown into an Error. */
export function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : JSON.stringify(value));
}
