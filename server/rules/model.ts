/**
 * The event map (server/rules/README.md): which Bitrix24 events run which actions. These are the
 * types of a map that passed `validateEventMap`; `unknown` input never reaches them unchecked.
 */

/** A value a condition compares with. Bitrix24 sends most fields as strings. */
export type Scalar = string | number | boolean | null;

/**
 * A field of the event's entity (`STAGE_ID`), or a path from the template context
 * (`deal.STAGE_ID`, `contact.PHONE`, `contact.PHONE.0.VALUE`, `event.name`). A path whose
 * first segment is not a lower-case context root (`deal`, `contact`, …) names an entity field.
 */
export type FieldPath = string;

/** The field equals the value (numbers compare numerically: `1500` equals `"1500.00"`). */
export interface EqualsCondition {
  field: FieldPath;
  equals: Scalar;
}
/** The field equals one of the values. */
export interface InCondition {
  field: FieldPath;
  in: Scalar[];
}
/** The field differs from the last snapshot of the entity (see transitions.ts). */
export interface ChangedCondition {
  field: FieldPath;
  changed: true;
}
/** The field changed to this value since the last snapshot (see transitions.ts). */
export interface BecomesCondition {
  field: FieldPath;
  becomes: Scalar;
}

export type Condition = EqualsCondition | InCondition | ChangedCondition | BecomesCondition;

/** What every action step has. */
export interface ActionBase {
  /** Step name: later steps read this step's output as `{{steps.<name>.response…}}`. */
  name?: string;
  /** Go on with the next step when this one fails for good (the failure is recorded). */
  continueOnError?: boolean;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * A credential field (see secret-fields.ts): text, an environment variable the operator
 * allows (`{"$env": "ERP_TOKEN"}`), or — in a stored map — the text encrypted.
 */
/**
 * A credential as written (text, `$env`) or as stored (`$enc`). `$inherited` marks a sealed
 * value a portal's map took over from the operator's default map (secret-fields.ts `sealMap`):
 * it is sent like any other, but never shown to the portal.
 */
export type Secret = string | { $env: string } | { $enc: string; $inherited?: true };

/** An HTTP request to any API. Every string inside may hold `{{templates}}`. */
export interface HttpAction extends ActionBase {
  type: 'http';
  method: HttpMethod;
  /** A credential field when it carries user:password or a key in the query. */
  url: Secret;
  /** Values other than Content-Type, Accept and the like are credential fields. */
  headers?: Record<string, Secret>;
  /** Any JSON; sent as JSON (a string body with a non-JSON Content-Type is sent as is). */
  body?: unknown;
  /** @default 10000 */
  timeoutMs?: number;
  /**
   * Signs the request the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
   * `webhook-signature`). `whsec_<base64>` is decoded; any other string is used as its bytes.
   */
  secret?: Secret;
}

/** A Telegram Bot API `sendMessage` (bot token from `TELEGRAM_BOT_TOKEN`). */
export interface TelegramAction extends ActionBase {
  type: 'telegram';
  /** @default the portal's own alert chat (never TELEGRAM_CHAT_ID: server/actions/types.ts) */
  chatId?: string | number;
  text: string;
  parseMode?: 'HTML' | 'MarkdownV2' | 'Markdown';
}

/** An e-mail over `SMTP_URL`. At least one of `text` / `html`. */
export interface EmailAction extends ActionBase {
  type: 'email';
  to: string | string[];
  subject: string;
  text?: string;
  html?: string;
  /** @default ALERT_EMAIL_FROM */
  from?: string;
}

/** An SMS through the configured provider (`SMS_PROVIDER`). */
export interface SmsAction extends ActionBase {
  type: 'sms';
  to: string;
  text: string;
}

/** Any Bitrix24 REST method on the event's portal, e.g. `crm.timeline.comment.add`. */
export interface BitrixAction extends ActionBase {
  type: 'bitrix';
  method: string;
  params?: Record<string, unknown>;
}

export type Action = HttpAction | TelegramAction | EmailAction | SmsAction | BitrixAction;
export type ActionType = Action['type'];
export const ACTION_TYPES: readonly ActionType[] = ['http', 'telegram', 'email', 'sms', 'bitrix'];

export interface Rule {
  /** Unique within the map; action runs and the log refer to it. */
  name: string;
  /** Event names (upper case), e.g. `ONCRMDEALUPDATE`. */
  on: string[];
  /** All must hold (AND). None = the event alone matches. */
  when?: Condition[];
  /** Run in order; a failed step stops the chain unless it has `continueOnError`. */
  actions: Action[];
  /** Expected time from receipt to the last action, for the dashboard. */
  slaSeconds?: number;
  /** @default true */
  enabled?: boolean;
}

export interface EventMap {
  rules: Rule[];
}

/**
 * The last seen values of the watched fields of one entity, keyed by the condition's `field`
 * string. A key that is absent means "never seen", which differs from a stored `null`.
 */
export type Snapshot = Record<string, unknown>;

/** A Bitrix24 record as REST returns it (`crm.deal.get` → `result`). */
export type Entity = Record<string, unknown>;

/** The event being processed, as rules and templates see it. */
export interface EventInfo {
  /** Upper case, e.g. `ONCRMDEALUPDATE`. */
  name: string;
  /** Our event id (the log row). */
  id?: number | string;
  memberId?: string;
  /** `deal`, `contact`, `dynamic:128`, … (server/intake/entity.ts). */
  entityType?: string | null;
  entityId?: string | null;
  [key: string]: unknown;
}
