import { parsePrivateHosts, type PrivateHosts } from '../lib/address-policy.js';
import { canonicalChat } from '../lib/telegram-chat.js';
import { list, type EnvReader } from './reader.js';
import type { Config, SmsProvider } from './types.js';

/** TELEGRAM_CHAT_ID in the one spelling every chat is compared in (`-0100999` → `-100999`). */
const optionalChat = (v: string | undefined) => (v === undefined ? undefined : canonicalChat(v));

/** Alert and action channels: Telegram, e-mail, SMS. */
export function parseChannels(r: EnvReader): Pick<Config, 'telegram' | 'email' | 'sms'> {
  const smtpUrl = r.text('SMTP_URL');
  if (smtpUrl && !/^smtps?:\/\//i.test(smtpUrl)) {
    r.problems.push('SMTP_URL must look like smtp://user:pass@host:port');
  } else if (smtpUrl && !parsesWithHost(smtpUrl)) {
    // nodemailer would fail every message with "Invalid URL", and Node's warning about the
    // unparseable URL (DEP0170) printed it whole, password included, on stderr. The URL is
    // never repeated here.
    r.problems.push(
      'SMTP_URL is not a valid URL with a host: percent-encode special characters of the user name and password (# as %23, / as %2F, ? as %3F, @ as %40, : as %3A)',
    );
  }
  const smsProvider = r.env.SMS_PROVIDER?.trim().toLowerCase() || undefined;
  if (smsProvider && !['generic', 'twilio', 'smsru'].includes(smsProvider)) {
    r.problems.push(`SMS_PROVIDER must be generic, twilio or smsru, got "${r.env.SMS_PROVIDER}"`);
  }
  return {
    telegram: {
      botToken: r.text('TELEGRAM_BOT_TOKEN'),
      chatId: optionalChat(r.text('TELEGRAM_CHAT_ID')),
      apiUrl: r.url('TELEGRAM_API_URL', 'https://api.telegram.org') ?? 'https://api.telegram.org',
    },
    email: {
      smtpUrl,
      to: r.text('ALERT_EMAIL_TO'),
      from: r.text('ALERT_EMAIL_FROM') ?? 'b24hooks <b24hooks@localhost>',
    },
    sms: {
      provider: smsProvider as SmsProvider | undefined,
      url: r.url('SMS_URL', undefined),
      token: r.text('SMS_TOKEN'),
      login: r.text('SMS_LOGIN'),
      from: r.text('SMS_FROM'),
    },
  };
}

/** What rule steps may reach (`ACTION_PRIVATE_HOSTS`) and read (`ACTION_SECRET_ENV`). */
export function parseActions(r: EnvReader): Config['actions'] {
  let privateHosts: PrivateHosts = { hosts: [], ranges: [] };
  try {
    privateHosts = parsePrivateHosts(list(r.env.ACTION_PRIVATE_HOSTS) ?? []);
  } catch (e) {
    r.problems.push(`ACTION_PRIVATE_HOSTS: ${(e as Error).message}`);
  }
  const secretEnv = new Map<string, string | undefined>();
  const secretEnvOrigins = new Map<string, string>();
  for (const entry of list(r.env.ACTION_SECRET_ENV) ?? []) {
    const at = entry.indexOf('@');
    const name = at < 0 ? entry : entry.slice(0, at);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      r.problems.push(`ACTION_SECRET_ENV: "${name}" is not an environment variable name`);
      continue;
    }
    if (at >= 0) {
      const origin = originOnly(entry.slice(at + 1));
      if (origin === undefined) {
        r.problems.push(
          `ACTION_SECRET_ENV: "${entry}": after @ comes the one origin the variable may be sent to, such as https://erp.example or https://erp.example:8443`,
        );
        continue;
      }
      const before = secretEnvOrigins.get(name);
      if (before !== undefined && before !== origin) {
        r.problems.push(
          `ACTION_SECRET_ENV: ${name} is bound to ${before} and to ${origin}: one origin a variable (another variable for the other)`,
        );
        continue;
      }
      secretEnvOrigins.set(name, origin);
    }
    secretEnv.set(name, r.env[name]);
  }
  return { privateHosts, secretEnv, secretEnvOrigins };
}

/** `https://host[:port]` (a trailing slash allowed) as its origin; anything more: undefined. */
function originOnly(text: string): string | undefined {
  try {
    const u = new URL(text);
    const bare =
      (u.protocol === 'https:' || u.protocol === 'http:') &&
      u.username === '' &&
      u.password === '' &&
      u.pathname === '/' &&
      u.search === '' &&
      u.hash === '' &&
      !/[?#]/.test(text);
    return bare ? u.origin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The URL parses and its host is the one written after the credentials. A `?`, `#` or `/`
 * left unencoded in the user name ends the host early and still parses (`smtp://us?er:pass@h`
 * is host `us` with the rest as its query), so an `@` after the host means exactly that.
 */
function parsesWithHost(url: string): boolean {
  try {
    const u = new URL(url);
    return u.hostname !== '' && !(u.pathname + u.search + u.hash).includes('@');
  } catch {
    return false;
  }
}
