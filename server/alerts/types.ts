import type { Lang } from '../lib/lang.js';
import type { AlertKind } from '../../db/stores/alerts.js';

export type { AlertKind } from '../../db/stores/alerts.js';

/** Which message of a condition's life is sent. `digest` is the failed-events summary. */
export type AlertPhase = 'firing' | 'reminder' | 'recovered' | 'digest';

export type AlertChannel = 'telegram' | 'email';

/** The payload of an `alert` job: one message on one channel, destination fixed at enqueue. */
export interface AlertPayload {
  channel: AlertChannel;
  kind: AlertKind;
  phase: AlertPhase;
  /** The condition (`backlog:total`, `sla:<member_id>` …). */
  key: string;
  memberId: string | null;
  subject: string;
  text: string;
  /** Telegram chat id (channel `telegram`). */
  chatId?: string;
  /** Recipient address(es), comma separated (channel `email`). */
  to?: string;
}

/** A message the monitor produced in one check. */
export interface AlertMessage {
  kind: AlertKind;
  phase: AlertPhase;
  key: string;
  memberId: string | null;
  subject: string;
  text: string;
}

/** What one `checkOnce()` did. */
export interface AlertCheckReport {
  /** Messages decided, with the channels they were queued on (none configured: empty). */
  sent: Array<AlertMessage & { channels: AlertChannel[] }>;
  /** SLA breaches recorded in this check (pending or late). */
  slaBreaches: number;
}

/** Where the figures are: a portal or all of them. */
export interface Scope {
  /** `acme.bitrix24.com` or `all portals`. */
  label: string;
  /** The portal's language (messages-ru.ts for Russian). @default 'en' */
  lang?: Lang;
}

export interface Text {
  subject: string;
  text: string;
}

/** What an alert says of one open destination (db/stores/destinations.ts destinationJson). */
export interface OpenDestination {
  destination: string;
  waitingJobs: number;
  failures: number;
  lastError: string | null;
}

/** At most this many destinations are named in one alert; the rest are counted. */
export const DESTINATIONS_NAMED = 5;
