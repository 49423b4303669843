import { z } from 'zod';
import { isFetchBlockedPort } from '../lib/fetch-ports.js';
import { TELEGRAM_CHAT } from '../lib/telegram-chat.js';

/** The longest SLA a rule may have: 30 days. */
export const SLA_MAX_SECONDS = 30 * 86_400;

/** Characters a rule's name may have. */
export const MAX_RULE_NAME = 120;

const FIELD = /^[A-Za-z_][\w-]*(\.[A-Za-z_\d][\w-]*|\[\d+\])*$/;
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()], {
  error: 'expected a string, number, boolean or null',
});

const condition = z
  .strictObject({
    field: z.string().regex(FIELD, {
      error: 'expected a field name or path such as STAGE_ID, deal.STAGE_ID or contact.PHONE',
    }),
    equals: scalar.optional(),
    in: z.array(scalar).min(1).optional(),
    changed: z.literal(true, { error: 'expected true' }).optional(),
    becomes: scalar.optional(),
  })
  .superRefine((c, ctx) => {
    const ops = (['equals', 'in', 'changed', 'becomes'] as const).filter((k) => k in c);
    if (ops.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          ops.length === 0
            ? 'expected one operator: equals, in, changed or becomes; got none'
            : `expected one operator: equals, in, changed or becomes; got ${ops.map((o) => `"${o}"`).join(' and ')}`,
      });
    }
  });

const stepBase = {
  name: z
    .string()
    .regex(/^[\p{L}_][\p{L}\p{N}_-]*$/u, {
      error: 'expected a step name of letters, digits, _ or - (no spaces)',
    })
    .optional(),
  continueOnError: z.boolean().optional(),
};

/** The explicit port of a URL whose scheme, host and port are written out (no template there). */
function literalPort(s: string): string | undefined {
  const origin = /^https?:\/\/[^/?#]*/.exec(s)?.[0];
  if (!origin || origin.includes('{{')) return undefined;
  try {
    return new URL(origin).port || undefined;
  } catch {
    return undefined;
  }
}

/** A URL pasted with spaces around it is taken without them (kept as typed, it was refused). */
const templatedUrl = z
  .string()
  .trim()
  .refine((s) => s.includes('{{') || !/\s/.test(s), {
    error: 'expected an http(s) URL without spaces (a space inside a URL is written %20)',
  })
  .refine((s) => s.includes('{{') || /\s/.test(s) || /^https?:\/\//i.test(s), {
    error: 'expected an http(s) URL, starting with "https://" (or "http://")',
  })
  .refine(
    (s) =>
      s.includes('{{') ||
      /\s/.test(s) ||
      /^https?:\/\/[^\s]+$/i.test(s) ||
      !/^https?:\/\//i.test(s),
    {
      error: 'expected an http(s) URL',
    },
  )
  .refine(
    (s) => {
      const port = literalPort(s);
      return port === undefined || !isFetchBlockedPort(port);
    },
    {
      error:
        'expected a port an HTTP request can use: this one is reserved for another protocol (such as SMTP, SSH or X11), so the request would never be sent; use the port the service answers HTTP on (usually 443 or none)',
    },
  );

/** A credential read from an environment variable the operator lists in ACTION_SECRET_ENV. */
const envRef = z.strictObject({
  $env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, {
    error: 'expected an environment variable name such as ERP_TOKEN',
  }),
});

/** A credential field: text, or `{"$env": "NAME"}`; type errors say which shapes fit. */
const orEnv = (text: z.ZodType<string>) =>
  z.union([text, envRef], {
    error: (iss) =>
      typeof iss.input === 'object' && iss.input !== null
        ? 'expected {"$env": "NAME"} (an environment variable listed in ACTION_SECRET_ENV)'
        : 'expected string',
  });

const http = z.strictObject({
  ...stepBase,
  type: z.literal('http'),
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
  url: orEnv(templatedUrl),
  // A name fetch would refuse at every send (RFC 9110 token characters only, no spaces).
  headers: z
    .record(
      z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, {
        error: 'expected a header name of letters, digits and - (no spaces)',
      }),
      orEnv(z.string()),
    )
    .optional(),
  body: z.unknown().optional(),
  timeoutMs: z.number().int().min(1).max(300_000).optional(),
  secret: orEnv(
    z.string().min(8, { error: 'expected a secret of at least 8 characters' }),
  ).optional(),
});

const telegram = z.strictObject({
  ...stepBase,
  type: z.literal('telegram'),
  // "hello world" was taken and sent, and every event then failed at Telegram's 400.
  chatId: z
    .union([
      z
        .string()
        .min(1)
        .refine((s) => s.includes('{{') || TELEGRAM_CHAT.test(s.trim()), {
          error: 'expected a Telegram chat: a number like -1001234567890 or @channel_name',
        }),
      z.number().int(),
    ])
    .optional(),
  text: z.string().min(1),
  parseMode: z.enum(['HTML', 'MarkdownV2', 'Markdown']).optional(),
});

const email = z
  .strictObject({
    ...stepBase,
    type: z.literal('email'),
    to: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(50)]),
    subject: z.string().min(1),
    text: z.string().optional(),
    html: z.string().optional(),
    from: z.string().min(1).optional(),
  })
  .refine((e) => e.text !== undefined || e.html !== undefined, {
    error: 'expected text or html (or both); got neither',
  });

const sms = z.strictObject({
  ...stepBase,
  type: z.literal('sms'),
  to: z.string().min(1),
  text: z.string().min(1),
});

const bitrix = z.strictObject({
  ...stepBase,
  type: z.literal('bitrix'),
  method: z.string().regex(/^[a-z][\w]*(\.[\w]+)+$/i, {
    error: 'expected a REST method name such as crm.timeline.comment.add',
  }),
  params: z.record(z.string(), z.unknown()).optional(),
});

const action = z.discriminatedUnion('type', [http, telegram, email, sms, bitrix]);

const rule = z.strictObject({
  // Longer names broke the pages that list rules (a 2,000-character name made the rules
  // table and the log's rule filter thousands of pixels wide) and say nothing more.
  name: z
    .string()
    .trim()
    .min(1)
    .max(MAX_RULE_NAME, { error: `expected a rule name of at most ${MAX_RULE_NAME} characters` }),
  on: z
    .array(
      z
        .string()
        .regex(/^on[a-z0-9_]+$/i, { error: 'expected an event name such as ONCRMDEALUPDATE' }),
    )
    .min(1)
    .transform((events) => events.map((e) => e.toUpperCase())),
  when: z.array(condition).optional(),
  actions: z.array(action).min(1),
  // Whole seconds, at most 30 days: "1e20" was refused as "expected int to be
  // <=9007199254740991", which told an admin nothing.
  slaSeconds: z
    .number()
    .max(SLA_MAX_SECONDS, { error: 'expected at most 30 days (2592000 seconds)', abort: true })
    .int({ abort: true })
    .positive({ error: 'expected at least 1 second' })
    .optional(),
  enabled: z.boolean().optional(),
});

/** The event map's shape (server/rules/README.md); cross-field checks live in validate.ts. */
export const eventMapSchema = z.strictObject({ rules: z.array(rule) });
