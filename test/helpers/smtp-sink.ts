import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string | undefined;
  to: string[];
  /** The raw RFC 5322 message. */
  raw: string;
  user: string | undefined;
}

export interface SmtpSink {
  /** `smtp://user:pass@127.0.0.1:<port>`, ready for SMTP_URL. */
  url: string;
  port: number;
  messages: ReceivedMail[];
  /** Connections opened so far (to check transports are reused). */
  connections(): number;
  /** Answer the next DATA with this SMTP code (e.g. 451 or 550). */
  rejectNext(code: number, message: string): void;
  /**
   * Answer RCPT TO for this address with this code from now on (450: mailbox busy, as a
   * relay says of one recipient); `'*'` for every recipient (421: the server is going down).
   */
  refuseRecipient(address: string, code: number, message: string): void;
  /**
   * Once `n` recipients in all were refused, refuse new connections with 421 (the server has
   * gone down: the breaker's own check, an SMTP login, then fails too). `'*'` refused with
   * 421 does so at once.
   */
  goDownAfterRefusals(n: number): void;
  close(): Promise<void>;
}

/**
 * A real SMTP server (the `smtp-server` package) on 127.0.0.1:0 that requires AUTH PLAIN/LOGIN
 * with the given credentials and keeps every message. STARTTLS is off: plain local SMTP.
 */
export async function startSmtpSink(
  user = 'mailer',
  pass = 'mail-secret',
  /** Told of each message accepted (the demo prints them). */
  onMessage?: (m: ReceivedMail) => void,
): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  let connections = 0;
  let reject: { code: number; message: string } | undefined;
  const refused = new Map<string, { code: number; message: string }>();
  let refusals = 0;
  let downAfter = Infinity;
  const isDown = () => refusals >= downAfter || refused.get('*')?.code === 421;
  const server = new SMTPServer({
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onConnect(_session, cb) {
      connections++;
      if (isDown()) {
        cb(Object.assign(new Error('Service not available'), { responseCode: 421 }));
        return;
      }
      cb();
    },
    onAuth(auth, _session, cb) {
      if (auth.username === user && auth.password === pass) cb(null, { user: auth.username });
      else cb(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, cb) {
      const r = refused.get(address.address.toLowerCase()) ?? refused.get('*');
      if (r) {
        refusals++;
        cb(Object.assign(new Error(r.message), { responseCode: r.code }));
      } else cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (reject) {
          const r = reject;
          reject = undefined;
          cb(Object.assign(new Error(r.message), { responseCode: r.code }));
          return;
        }
        const mail: ReceivedMail = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
          user: typeof session.user === 'string' ? session.user : undefined,
        };
        messages.push(mail);
        onMessage?.(mail);
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://${user}:${pass}@127.0.0.1:${port}`,
    port,
    messages,
    connections: () => connections,
    rejectNext(code, message) {
      reject = { code, message };
    },
    refuseRecipient(address, code, message) {
      refused.set(address.toLowerCase(), { code, message });
    },
    goDownAfterRefusals(n) {
      downAfter = n;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The decoded body of a message's part of this type (`text/plain`, `text/html`), from a
 * single-part or multipart message; quoted-printable and base64 are decoded.
 */
export function mailPart(raw: string, type: string): string | undefined {
  const [head = '', ...rest] = raw.split(/\r?\n\r?\n/);
  const body = rest.join('\r\n\r\n');
  const header = (name: string, h: string): string =>
    new RegExp(`^${name}:([^\\r\\n]*(?:\\r?\\n[ \\t][^\\r\\n]*)*)`, 'im').exec(h)?.[1]?.trim() ??
    '';
  const contentType = header('Content-Type', head);
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (boundary) {
    for (const part of body.split(`--${boundary}`).slice(1)) {
      const found = mailPart(part.replace(/^\r?\n/, ''), type);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (!contentType.toLowerCase().startsWith(type)) return undefined;
  const encoding = header('Content-Transfer-Encoding', head).toLowerCase();
  if (encoding === 'base64')
    return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (encoding === 'quoted-printable') {
    const bytes = body
      .replace(/=\r?\n/g, '')
      .replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1')
      .toString('utf8')
      .replace(/\r?\n$/, '');
  }
  return body.replace(/\r?\n$/, '');
}

/** What a mail reader shows of an HTML body: tags dropped, entities decoded. */
export function htmlText(html: string): string {
  const named: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
  return html
    .replace(/<[^>]*>/g, '')
    .replace(/&(?:#(\d+)|#x([0-9a-f]+)|([a-z]+));/gi, (m, d?: string, x?: string, n?: string) =>
      d
        ? String.fromCodePoint(Number(d))
        : x
          ? String.fromCodePoint(parseInt(x, 16))
          : (named[n!.toLowerCase()] ?? m),
    );
}
