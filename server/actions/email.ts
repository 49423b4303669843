import { createHash } from 'node:crypto';
import net from 'node:net';
import { domainToASCII } from 'node:url';
import addressparser from 'nodemailer/lib/addressparser';
import { addressPolicy, type PrivateHosts } from '../lib/address-policy.js';
import { TooManyExchangersError, type MailExchanger, type MailRoutes } from '../lib/mail-route.js';
import { PermanentError, RetryableError } from '../lib/retry-errors.js';
import type { EmailAction } from '../rules/model.js';
import { createMailer } from './mailer.js';
import type { ActionContext, ActionResult } from './types.js';

/** Connection-level failures worth retrying (nodemailer error codes). */
const TRANSIENT = new Set([
  'ECONNECTION',
  'ETIMEDOUT',
  'ESOCKET',
  'EDNS',
  'ECONNREFUSED',
  'ECONNRESET',
]);

/**
 * Maps a nodemailer failure: SMTP 4xx and connection trouble are retried; 5xx replies, bad
 * credentials and bad envelopes fail for good. A 4xx to this message's envelope or content
 * (MAIL FROM, RCPT TO, DATA: a recipient's mailbox is busy) is about the message: every
 * portal's steps send through the one SMTP server, so a portal whose recipients are refused
 * for now must not open that server's circuit for all of them. 421 is the server itself
 * closing the channel (RFC 5321 4.2.3), as are failures to connect, greet or authenticate.
 */
function classify(e: unknown): Error {
  const err = e as Error & { code?: string; responseCode?: number };
  const msg = `email not sent: ${err.message}`;
  if (typeof err.responseCode === 'number') {
    if (err.responseCode >= 500) return new PermanentError(msg, { cause: e });
    const aboutMessage =
      (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && err.responseCode !== 421;
    return new RetryableError(msg, { cause: e, refusedRequest: aboutMessage });
  }
  if (err.code === 'EAUTH' || err.code === 'EENVELOPE' || err.code === 'EMESSAGE') {
    return new PermanentError(msg, { cause: e });
  }
  if (err.code && TRANSIENT.has(err.code)) return new RetryableError(msg, { cause: e });
  return new RetryableError(msg, { cause: e });
}

/** Most recipients of one `email` step, after its templates are filled in. */
export const MAX_EMAIL_RECIPIENTS = 50;

const addresses = (text: string) =>
  addressparser(text, { flatten: true }).filter((a) => a.address.includes('@'));
const domainOf = (address: string) => address.slice(address.lastIndexOf('@') + 1).toLowerCase();

/**
 * Names that are no public mail domain: special-use and internal names (RFC 6761 `localhost`,
 * RFC 6762 `local`, RFC 8375 `home.arpa`, ICANN's `internal`, and the names networks commonly
 * use inside: `localdomain`, `intranet`, `lan`, `corp`, `home`, `private`).
 */
const INTERNAL_MAIL_DOMAIN =
  /(^|\.)(localhost|local|localdomain|internal|intranet|lan|home\.arpa|corp|home|private)$/;

/** The address of a literal domain (`[10.0.0.5]`, or bare `10.0.0.5`: some servers deliver to it). */
function literalOf(written: string): string | undefined {
  const literal = /^\[(?:ipv6:)?([^\]]*)\]$/i.exec(written);
  return literal ? literal[1]! : net.isIP(written) ? written : undefined;
}

/**
 * A domain as the mail goes out: nodemailer maps it as IDNA does (`。` to `.`, invisible
 * characters dropped), so `a.b。internal` and `mail.internal` + U+200B are mail.internal.
 */
const mailDomain = (written: string): string => domainToASCII(written).replace(/\.+$/, '');

/**
 * Why a step may not send to `address`, or undefined. The SMTP server is the operator's, and
 * inside his network: a message to `root@localhost`, `ops@mail.internal`, `x@erp` or
 * `x@[10.0.0.5]` would be delivered into that network, where a rule author may not reach
 * (server/rules/README.md#private-addresses). An address literal is judged as an `http`
 * step's address; a domain listed in ACTION_PRIVATE_HOSTS is allowed.
 */
export function refusedRecipient(address: string, allowed: PrivateHosts): string | undefined {
  const written = domainOf(address);
  const policy = addressPolicy(allowed);
  const ip = literalOf(written);
  if (ip !== undefined) {
    if (policy.hostAllowed(ip)) return undefined;
    const why = policy.refuse(ip);
    return why && `${address}: ${why}`;
  }
  const domain = mailDomain(written);
  if (!domain) return `${address}: ${written} is not a mail domain`;
  if (policy.hostAllowed(domain)) return undefined;
  if (!domain.includes('.') || INTERNAL_MAIL_DOMAIN.test(domain) || /\.\d+$/.test(domain)) {
    return `${address}: ${domain} is not a public mail domain (not in ACTION_PRIVATE_HOSTS)`;
  }
  return undefined;
}

/** Longest sender name a step may give, before " via b24hooks". */
const MAX_SENDER_NAME = 60;

/**
 * Names reserved for documentation and tests (RFC 2606, RFC 6761): no mail is delivered
 * there, so there is no route to look up.
 */
const RESERVED_MAIL_DOMAIN = /(^|\.)(test|example|invalid|example\.(com|net|org))$/;

/** How long a step waits for its recipients' mail routes, all looked up at once. */
export const MAIL_ROUTE_WAIT_MS = 3_000;

/**
 * Every recipient domain's route at once, within MAIL_ROUTE_WAIT_MS (the step holds a slot
 * of the shared SMTP server meanwhile): a refused route fails the step for good. A check,
 * not a guarantee: the relay looks the domain up again later, and DNS may answer it
 * otherwise; a domain DNS does not answer in time is left to the relay, as is every domain
 * where the server has no DNS of its own, rather than holding every portal's mail.
 */
async function checkRoutes(
  domains: ReadonlyMap<string, string>,
  routes: MailRoutes,
  ctx: ActionContext,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), MAIL_ROUTE_WAIT_MS);
    timer.unref();
  });
  const checks = [...domains].map(async ([domain, address]) => {
    const refused = await refusedRoute(domain, routes, ctx.config.actions.privateHosts, ctx);
    if (refused) throw new PermanentError(`email step refused: ${address}: ${refused}`);
  });
  try {
    await Promise.race([Promise.all(checks), late]);
  } finally {
    clearTimeout(timer);
    for (const c of checks) c.catch(() => {});
  }
}

/**
 * Why mail for `domain` may not go through the operator's SMTP server, by where that server
 * would deliver it: a public name whose MX (or, without one, whose own address) points into
 * the server's network (`mx.evil.example` at 10.0.0.5) reaches it as surely as `x@[10.0.0.5]`
 * would. A domain or exchanger ACTION_PRIVATE_HOSTS lists is allowed.
 */
async function refusedRoute(
  domain: string,
  routes: MailRoutes,
  allowed: PrivateHosts,
  ctx: ActionContext,
): Promise<string | undefined> {
  const policy = addressPolicy(allowed);
  if (policy.hostAllowed(domain) || RESERVED_MAIL_DOMAIN.test(domain)) return undefined;
  let route: MailExchanger[];
  try {
    route = await routes(domain);
  } catch (e) {
    if (e instanceof TooManyExchangersError) return `${e.message}: not sent`;
    ctx.logger.debug(
      { domain, err: (e as NodeJS.ErrnoException).code ?? (e as Error).message },
      "a recipient domain's mail route was not looked up: left to the SMTP server",
    );
    return undefined;
  }
  for (const { host, addresses: found } of route) {
    if (policy.hostAllowed(host)) continue;
    for (const { address } of found) {
      const kind = policy.refusedKind(address);
      if (kind) {
        return `the mail server of ${domain}${host === domain ? '' : ` (${host})`} is at ${kind}, inside the server's network (not in ACTION_PRIVATE_HOSTS)`;
      }
    }
  }
  return undefined;
}

/**
 * Who a step's message is from. The SMTP account is the operator's (ALERT_EMAIL_FROM), its
 * mail signed and vouched for as the operator's domain, and every portal's rules send
 * through it: anyone who installs the app writes those rules. So a step never writes as an
 * address of its own, not even one of the operator's domain (`security@` it); the message
 * is from ALERT_EMAIL_FROM's address, the step's address becomes the Reply-To, and the
 * step's name is shown as "<name> via b24hooks", reduced to plain words (no `@`, quotes,
 * angle brackets or invisible characters, which make a name pass for an address).
 */
export function senderOf(
  stepFrom: string | undefined,
  serverFrom: string,
): { from: string | { name: string; address: string }; replyTo?: string } {
  const server = addresses(serverFrom)[0];
  const listed = stepFrom === undefined ? [] : addresses(stepFrom);
  // One sender: a list (or a group) would put other addresses into From.
  const step = listed.length === 1 ? listed[0] : undefined;
  if (!step || !server) return { from: serverFrom };
  const name = step.name
    .replace(/[\p{C}"<>@\\]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, MAX_SENDER_NAME)
    .trim();
  return {
    from: name ? { name: `${name} via b24hooks`, address: server.address } : serverFrom,
    replyTo: step.address,
  };
}

/**
 * An `email` step over `SMTP_URL` (nodemailer). The Message-ID is derived from the
 * idempotency key, so a receiving system can recognise a repeated step. At most
 * MAX_EMAIL_RECIPIENTS recipients, and the sender as `senderOf` allows.
 */
/** How many addresses a step's `to` names (a text may list several, comma-separated). */
export function recipientCount(to: EmailAction['to']): number {
  const list = Array.isArray(to) ? to.map(String) : [String(to)];
  return list.reduce((n, t) => n + addresses(t).length, 0);
}

export async function runEmail(action: EmailAction, ctx: ActionContext): Promise<ActionResult> {
  const smtpUrl = ctx.config.email.smtpUrl;
  if (!smtpUrl) throw new PermanentError('email step: SMTP_URL is not set');
  const mailer = ctx.mailer ?? createMailer();
  const messageId = `<${createHash('sha256').update(ctx.idempotencyKey).digest('hex').slice(0, 32)}@b24hooks>`;
  const to = Array.isArray(action.to) ? action.to.map(String) : String(action.to);
  const count = recipientCount(to);
  if (count > MAX_EMAIL_RECIPIENTS) {
    throw new PermanentError(
      `email step: ${count} recipients; at most ${MAX_EMAIL_RECIPIENTS} per step`,
    );
  }
  const domains = new Map<string, string>();
  for (const t of ctx.operatorRecipients ? [] : Array.isArray(to) ? to : [to]) {
    for (const { address } of addresses(t)) {
      const refused = refusedRecipient(address, ctx.config.actions.privateHosts);
      if (refused) throw new PermanentError(`email step refused: ${refused}`);
      // Names only: an address literal is judged above, and has no route to look up.
      const written = domainOf(address);
      const domain = literalOf(written) === undefined ? mailDomain(written) : '';
      if (domain && !domains.has(domain)) domains.set(domain, address);
    }
  }
  if (ctx.mailRoutes) await checkRoutes(domains, ctx.mailRoutes, ctx);
  const sender = senderOf(action.from, ctx.config.email.from);
  const started = performance.now();
  try {
    const info = await mailer.transport(smtpUrl).sendMail({
      ...sender,
      to,
      subject: action.subject,
      text: action.text,
      html: action.html,
      messageId,
    });
    return {
      status: 'succeeded',
      request: {
        type: 'email',
        to,
        subject: action.subject,
        ...(sender.replyTo ? { replyTo: sender.replyTo } : {}),
      },
      response: {
        ms: Math.round(performance.now() - started),
        body: {
          messageId: info.messageId,
          accepted: (info.accepted ?? []).map(String),
          rejected: (info.rejected ?? []).map(String),
          response: info.response,
        },
      },
    };
  } catch (e) {
    throw classify(e);
  } finally {
    if (!ctx.mailer) mailer.close();
  }
}
