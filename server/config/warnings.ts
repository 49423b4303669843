import fs from 'node:fs';
import path from 'node:path';
import { isBindableEvent } from './bitrix-events.js';
import type { Config } from './types.js';

const LOCAL_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/**
 * What a server on a public address (APP_URL not on this machine) leaves open that the
 * contract's defaults allow: said once at start, on stderr and in the log, so the operator
 * decides rather than finds out.
 */
export function publicDeploymentWarnings(config: Config): string[] {
  let host = '';
  try {
    host = new URL(config.appUrl).hostname;
  } catch {
    return [];
  }
  if (LOCAL_HOST.test(host)) return [];
  const out: string[] = [];
  // Bitrix24 binds handlers only on a host with a dot after its first character (CORE:
  // rest/lib/handlerhelper.php checkCallback, else ERROR_WRONG_HANDLER_URL): an intranet name
  // or an IPv6 address fails every install at its first event.bind.
  if (!(host.indexOf('.') > 0)) {
    out.push(
      `APP_URL's host "${host}" has no dot: Bitrix24 refuses handler URLs on such a host (ERROR_WRONG_HANDLER_URL), so every install fails when it binds its events; use the public DNS name.`,
    );
  }
  if (!config.metricsToken) {
    out.push(
      'METRICS_TOKEN is not set: /metrics is open to anyone and names every portal (member_id), its rules and the hosts its steps call; set METRICS_TOKEN on a public address.',
    );
  }
  if (config.ipAllowlist.length === 0) {
    out.push(
      "B24_IP_ALLOWLIST is not set: anyone may post to the events URL (forged deliveries are refused, but a stranger can hold a new portal's unverified slots); set B24_IP_ALLOWLIST=bitrix24 on a public address.",
    );
  }
  return out;
}

/**
 * Alert channels and the SMS gateway configured by half: the start went on without a word,
 * and the first alert was dropped from that channel with a warning in the log (or an SMS
 * step failed for good). Said once at start instead; a channel may be set up later, so the
 * start goes on.
 */
export function channelWarnings(config: Config): string[] {
  const out: string[] = [];
  const { telegram, email, sms } = config;
  if (telegram.chatId && !telegram.botToken) {
    out.push(
      'TELEGRAM_CHAT_ID is set without TELEGRAM_BOT_TOKEN: no alert goes to Telegram; set the bot token too.',
    );
  }
  if (email.to && !email.smtpUrl) {
    out.push('ALERT_EMAIL_TO is set without SMTP_URL: no alert goes by e-mail; set SMTP_URL too.');
  }
  for (const to of (email.to ?? '').split(',').map((a) => a.trim())) {
    if (to && !/^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/.test(to)) {
      out.push(`ALERT_EMAIL_TO: "${to}" is not an e-mail address; alerts are not sent to it.`);
    }
  }
  const missing = smsMissing(sms);
  if (missing) out.push(missing);
  return out;
}

/** What an SMS provider that is named still lacks, in a line for the start (undefined: none). */
function smsMissing(sms: Config['sms']): string | undefined {
  if (sms.provider === 'generic' && !sms.url) {
    return 'SMS_PROVIDER=generic needs SMS_URL: every SMS step fails until it is set.';
  }
  if (sms.provider === 'twilio' && (!sms.login || !sms.token || !sms.from)) {
    return 'SMS_PROVIDER=twilio needs SMS_LOGIN (Account SID), SMS_TOKEN and SMS_FROM: every SMS step fails until they are set.';
  }
  if (sms.provider === 'smsru' && !sms.token) {
    return 'SMS_PROVIDER=smsru needs SMS_TOKEN (the api_id): every SMS step fails until it is set.';
  }
  return undefined;
}

/**
 * Which channels of rule steps this server has set up: a step of another one fails every
 * time its rule runs (the map check says so when a rule is saved: server/rules/check-map.ts).
 */
export function serverChannels(config: Config): {
  telegram: boolean;
  email: boolean;
  sms: boolean;
} {
  return {
    telegram: Boolean(config.telegram.botToken),
    email: Boolean(config.email.smtpUrl),
    sms: Boolean(config.sms.provider) && smsMissing(config.sms) === undefined,
  };
}

/**
 * A B24_OAUTH_ZONE_SERVERS entry B24_OAUTH_SERVERS does not trust: every install of that
 * zone is refused (403, naming B24_OAUTH_SERVERS), long after a start that said nothing.
 * The defaults trust each other; set by hand, the two lists may disagree.
 */
export function oauthZoneWarnings(config: Config): string[] {
  return config.b24.oauthZoneServers
    .filter((z) => !config.b24.oauthServers.includes(z.origin))
    .map(
      (z) =>
        `B24_OAUTH_ZONE_SERVERS: ${z.origin} (zone ${z.zone}) is not in B24_OAUTH_SERVERS: every install of that zone is refused; add it there.`,
    );
}

/**
 * ACTION_SECRET_ENV names without an origin: any portal's admin may put `{"$env": "NAME"}`
 * in a step to an address of their own and receive the operator's value. Allowed (a
 * private deployment's own rules), but said at start, with the way to bind it.
 */
export function secretEnvWarnings(config: Config): string[] {
  const unbound = [...config.actions.secretEnv.keys()].filter(
    (n) => !config.actions.secretEnvOrigins.has(n),
  );
  if (unbound.length === 0) return [];
  return [
    `ACTION_SECRET_ENV: ${unbound.join(', ')} may be sent by any portal's rules to any address; write NAME@https://host (the one origin it may go to), e.g. ${unbound[0]}@https://erp.example.`,
  ];
}

/**
 * B24_EVENTS names the app does not know (a typo of a known one already stopped the start):
 * a newer Bitrix24 event may be right, so the start goes on, and says so once.
 */
export function unknownEventWarnings(config: Config): string[] {
  const unknown = (config.b24.events ?? []).filter((e) => !isBindableEvent(e));
  if (unknown.length === 0) return [];
  return [
    `B24_EVENTS: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not among the Bitrix24 CRM and task events this version knows; if the portal does not know ${unknown.length === 1 ? 'it' : 'them'} either, every install logs a refused binding and rules on ${unknown.length === 1 ? 'it' : 'them'} never run.`,
  ];
}

/**
 * An instance on PostgreSQL whose key is in its DATA_DIR: a second instance, with a DATA_DIR
 * of its own, would make another and be refused.
 */
export function sharedKeyWarnings(config: Config): string[] {
  if (config.database.client !== 'pg' || !config.tokenKeyFromFile) return [];
  return [
    `TOKEN_ENCRYPTION_KEY is not set: this instance's key is in ${path.join(config.dataDir, 'secrets.json')}, and every instance on this PostgreSQL database needs the same one; set TOKEN_ENCRYPTION_KEY and SESSION_SECRET (from that file) in every instance's environment.`,
  ];
}

/**
 * The data files other users of the machine may read. A new SQLite file, its folder and
 * secrets.json are made for the owner only (db/connect.ts, server/secrets.ts), but an
 * existing one keeps the mode it has: a database from before that change, or copied back
 * from a backup, is often 0644. It holds every portal's event log, sealed tokens and rule
 * secrets, and secrets.json the key that opens them; said once at start, not changed (an
 * operator may have chosen a group on purpose).
 */
export function dataFileWarnings(config: Config): string[] {
  const files = [path.join(config.dataDir, 'secrets.json')];
  if (config.database.client === 'sqlite') {
    const db = config.database.filename;
    files.unshift(db, `${db}-wal`, `${db}-shm`);
  }
  const open: string[] = [];
  for (const file of files) {
    // SQLite makes them with the database's mode: named with it, they add nothing.
    if (/-(wal|shm)$/.test(file) && open.length > 0 && config.database.client === 'sqlite')
      continue;
    let mode: number;
    try {
      mode = fs.statSync(file).mode & 0o777;
    } catch {
      continue;
    }
    if (mode & 0o066) open.push(`${file} (${mode.toString(8).padStart(4, '0')})`);
  }
  if (open.length === 0) return [];
  return [
    `other users of this machine may read or write ${open.join(', ')}: the database holds every portal's event log and sealed tokens, secrets.json the key to them; chmod 600 them (new ones are made so)`,
  ];
}
