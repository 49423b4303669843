import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createMailer, runAction, type ActionContext } from '../../server/actions/index.js';
import type { Env } from '../../server/config.js';
import { silentLogger } from '../../server/lib/logger.js';
import { PermanentError, RetryableError } from '../../server/lib/retry-errors.js';
import type { EmailAction } from '../../server/rules/model.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';
import { tempDir } from '../helpers/temp-dir.js';
import { testConfig } from '../helpers/test-deps.js';
import { startDnsStandin, type DnsStandin } from '../helpers/dns-standin.js';
import { createHostResolver } from '../../server/lib/host-resolver.js';
import { createMailRoutes, type MailRoutes } from '../../server/lib/mail-route.js';
import { MAIL_ROUTE_WAIT_MS } from '../../server/actions/email.js';

describe('email action', () => {
  let smtp: SmtpSink;
  const tmp = tempDir();
  const mailer = createMailer();
  const ctx = (env: Env = {}, key = 'evt-1:r:2'): ActionContext => ({
    config: testConfig(tmp.dir, {
      SMTP_URL: smtp.url,
      ALERT_EMAIL_FROM: 'Shop <shop@example.test>',
      ...env,
    }),
    logger: silentLogger(),
    idempotencyKey: key,
    mailer,
  });
  const mail: EmailAction = {
    type: 'email',
    to: 'ada@example.test',
    subject: 'Deal 42 is paid',
    text: 'Thank you for your payment.',
  };

  beforeAll(async () => {
    smtp = await startSmtpSink();
  });
  afterAll(async () => {
    mailer.close();
    await smtp.close();
    tmp.cleanup();
  });

  it('delivers the message to a real SMTP server after logging in', async () => {
    const result = await runAction(mail, mail, ctx());
    const got = smtp.messages.at(-1);
    expect(got?.user).toBe('mailer');
    expect(got?.to).toEqual(['ada@example.test']);
    expect(got?.from).toBe('shop@example.test');
    expect(got?.raw).toMatch(/^Subject: Deal 42 is paid$/m);
    expect(got?.raw).toContain('Thank you for your payment.');
    expect(result.response.body).toMatchObject({ accepted: ['ada@example.test'], rejected: [] });
    expect(JSON.stringify(result)).not.toContain('mail-secret');
  });

  it('refuses recipients inside the server’s network, unless ACTION_PRIVATE_HOSTS lists them', async () => {
    const refused = [
      'root@localhost',
      'ops@mail.internal',
      'x@erp',
      'x@[10.0.0.5]',
      'x@[IPv6:::1]',
      'Ops <ops@files.local>',
      'a@example.test, b@intranet',
      'x@box.home.arpa.',
      // As nodemailer sends them: IDNA maps `。` to `.` and drops invisible characters.
      'x@a.b\u3002internal',
      'x@mail.internal\u200b',
      'x@mail.internal\u00ad',
      'x@mail.internal..',
      // Bare addresses, which some servers deliver to.
      'x@10.0.0.5',
      'x@192.168.1.1',
    ];
    const before = smtp.messages.length;
    for (const to of refused) {
      const step: EmailAction = { ...mail, to };
      const e = await runAction(step, step, ctx()).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(PermanentError);
      expect((e as Error).message).toMatch(/^email step refused: /);
    }
    // Not one of them reached the SMTP server, not even the public address beside one.
    expect(smtp.messages.length).toBe(before);
    const internal: EmailAction = { ...mail, to: 'ops@mail.internal' };
    expect(await runAction(internal, internal, ctx()).catch((e: Error) => e.message)).toBe(
      'email step refused: ops@mail.internal: mail.internal is not a public mail domain (not in ACTION_PRIVATE_HOSTS)',
    );
    // Control: allowed where the operator lists the domain, and public addresses go.
    const listed: EmailAction = { ...mail, to: 'ops@mail.internal' };
    await runAction(listed, listed, ctx({ ACTION_PRIVATE_HOSTS: 'mail.internal' }));
    expect(smtp.messages.at(-1)?.to).toEqual(['ops@mail.internal']);
    const publicOnes: EmailAction = { ...mail, to: ['a@example.com', 'b@[8.8.8.8]'] };
    await runAction(publicOnes, publicOnes, ctx());
    expect(smtp.messages.at(-1)?.to).toEqual(['a@example.com', 'b@[8.8.8.8]']);
    // The operator's own alert address is his to choose.
    const alert: EmailAction = { ...mail, to: 'root@localhost' };
    await runAction(alert, alert, { ...ctx(), operatorRecipients: true });
    expect(smtp.messages.at(-1)?.to).toEqual(['root@localhost']);
  });

  it('derives a stable Message-ID from the idempotency key', async () => {
    await runAction(mail, mail, ctx({}, 'evt-7:r:1'));
    await runAction(mail, mail, ctx({}, 'evt-7:r:1'));
    const ids = smtp.messages.slice(-2).map((m) => /^Message-ID: (.*)$/im.exec(m.raw)?.[1]?.trim());
    expect(ids[0]).toMatch(/^<[0-9a-f]{32}@b24hooks>$/);
    expect(ids[1]).toBe(ids[0]);
  });

  it('reuses one SMTP connection pool per URL instead of one per message', async () => {
    expect(mailer.transport(smtp.url)).toBe(mailer.transport(smtp.url));
    const before = smtp.connections();
    await runAction(mail, mail, ctx());
    await runAction(mail, mail, ctx());
    await runAction(mail, mail, ctx());
    expect(smtp.connections() - before).toBeLessThanOrEqual(1);
  });

  it('sends HTML and several recipients', async () => {
    const action: EmailAction = {
      ...mail,
      to: ['a@example.test', 'b@example.test'],
      html: '<p>Paid</p>',
      text: undefined,
    };
    await runAction(action, action, ctx());
    expect(smtp.messages.at(-1)?.to).toEqual(['a@example.test', 'b@example.test']);
    expect(smtp.messages.at(-1)?.raw).toContain('<p>Paid</p>');
  });

  it('retries an SMTP 4xx and fails for good on a 5xx', async () => {
    smtp.rejectNext(451, 'Try again later');
    expect(await runAction(mail, mail, ctx()).catch((e: unknown) => e)).toBeInstanceOf(
      RetryableError,
    );
    smtp.rejectNext(550, 'Mailbox unavailable');
    const err = await runAction(mail, mail, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain('Mailbox unavailable');
  });

  it('logs in with a user name and password holding reserved characters, percent-encoded', async () => {
    const user = 'shop?mail#1';
    const pass = 'p?ss/w@rd:#%&=+ x';
    const special = await startSmtpSink(user, pass);
    try {
      const url = `smtp://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${special.port}`;
      // Its own transport, closed after the message, so the server can close too.
      await runAction(mail, mail, { ...ctx({ SMTP_URL: url }), mailer: undefined });
      expect(special.messages.map((m) => m.user)).toEqual([user]);
    } finally {
      await special.close();
    }
  });

  it('fails for good on wrong credentials and without SMTP_URL', async () => {
    const wrong = smtp.url.replace('mail-secret', 'nope');
    const err = await runAction(mail, mail, {
      ...ctx({ SMTP_URL: wrong }),
      mailer: undefined,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).not.toContain('nope');
    await expect(runAction(mail, mail, ctx({ SMTP_URL: '' }))).rejects.toThrow(
      'SMTP_URL is not set',
    );
  });

  /**
   * The SMTP account is the operator's and every portal's rules send through it: before, a
   * step's `from` went out as written, so any installer could mail as anyone; then as any
   * mailbox of the operator's own domain (`Security Team <security@…>`, signed as the
   * operator's), which anyone who installs the app could still use to phish in its name.
   */
  it("sends from the server's address only; the step's becomes the Reply-To, its name marked", async () => {
    const own: EmailAction = { ...mail, from: 'Security Team <security@example.test>' };
    await runAction(own, own, ctx());
    const mine = smtp.messages.at(-1)!;
    expect(mine.from).toBe('shop@example.test');
    expect(mine.raw).toMatch(/^From: Security Team via b24hooks <shop@example\.test>$/m);
    expect(mine.raw).toMatch(/^Reply-To: security@example\.test$/m);

    const foreign: EmailAction = { ...mail, from: 'Bank Security <security@bank.example>' };
    const result = await runAction(foreign, foreign, ctx());
    const got = smtp.messages.at(-1)!;
    expect(got.from).toBe('shop@example.test');
    expect(got.raw).toMatch(/^From: Bank Security via b24hooks <shop@example\.test>$/m);
    expect(got.raw).toMatch(/^Reply-To: security@bank\.example$/m);
    expect(result.request).toMatchObject({ replyTo: 'security@bank.example' });

    // A name that would pass for an address, or hide characters, is reduced to words; no
    // name is the server's own.
    for (const [from, shown] of [
      ['"admin@example.test" <x@evil.example>', '"admin example.test via b24hooks"'],
      ['"Pay\u202Ementi\u202C" <x@evil.example>', 'Pay menti via b24hooks'],
      ['x@evil.example', 'Shop'],
    ]) {
      const odd: EmailAction = { ...mail, from };
      await runAction(odd, odd, ctx());
      const sent = smtp.messages.at(-1)!;
      expect([from, /^From: (.*)$/m.exec(sent.raw)?.[1]]).toEqual([
        from,
        `${shown} <shop@example.test>`,
      ]);
    }

    // A list or a group in from: one address of the server's domain does not carry the rest.
    for (const from of [
      'noreply@example.test, security@bank.example',
      'Alerts: noreply@example.test, security@bank.example;',
    ]) {
      const listed: EmailAction = { ...mail, from };
      await runAction(listed, listed, ctx());
      const sent = smtp.messages.at(-1)!;
      expect([from, /^From: (.*)$/m.exec(sent.raw)?.[1]]).toEqual([
        from,
        'Shop <shop@example.test>',
      ]);
    }
  });

  it('refuses more than 50 recipients, however the template filled them in', async () => {
    const many = Array.from({ length: 51 }, (_, i) => `u${i}@example.test`).join(', ');
    const action: EmailAction = { ...mail, to: '{{contact.EMAIL}}' };
    const before = smtp.messages.length;
    const err = await runAction(action, { ...action, to: many }, ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain('51 recipients');
    expect(smtp.messages).toHaveLength(before);
    // Control: fifty go out.
    const fifty = many.split(', ').slice(0, 50).join(', ');
    await runAction(action, { ...action, to: fifty }, ctx());
    expect(smtp.messages.at(-1)?.to).toHaveLength(50);
  });
});

/**
 * The SMTP server is the operator's, inside his network, and delivers a domain's mail to
 * its MX hosts: a public domain of a rule author's whose MX points at 10.0.0.5 had its mail
 * delivered there, into that network, though `x@[10.0.0.5]` was refused. A name server on
 * loopback answers the MX and A records here.
 */
describe("email action and where a domain's mail goes", () => {
  let smtp: SmtpSink;
  let dns: DnsStandin;
  const tmp = tempDir();
  const mailer = createMailer();
  let routes: MailRoutes;
  const ctx = (env: Env = {}, mailRoutes = routes): ActionContext => ({
    config: testConfig(tmp.dir, {
      SMTP_URL: smtp.url,
      ALERT_EMAIL_FROM: 'Shop <shop@example.test>',
      ...env,
    }),
    logger: silentLogger(),
    idempotencyKey: 'evt-1:r:3',
    mailer,
    mailRoutes,
  });
  const to = (address: string): EmailAction => ({
    type: 'email',
    to: address,
    subject: 'Deal 42 is paid',
    text: 'Thank you.',
  });
  const send = (address: string, env?: Env, mailRoutes?: MailRoutes) =>
    runAction(to(address), to(address), ctx(env, mailRoutes)).catch((e: unknown) => e);

  beforeAll(async () => {
    smtp = await startSmtpSink();
    dns = await startDnsStandin();
    dns.names.set('inside-mail.net', { mx: ['mx.inside-mail.net'] });
    dns.names.set('mx.inside-mail.net', { a: ['10.0.0.5'] });
    dns.names.set('no-mx.net', { a: ['192.168.7.7'] });
    dns.names.set('public-mail.net', { mx: ['mx1.public-mail.net', 'mx2.public-mail.net'] });
    dns.names.set('mx1.public-mail.net', { a: ['93.184.216.34'] });
    dns.names.set('mx2.public-mail.net', { a: ['93.184.216.35'], aaaa: ['2606:2800:220:1::1'] });
    dns.names.set('second-mx.net', { mx: ['mx.public-mail.net', 'mx.inside-mail.net'] });
    dns.names.set('mx.public-mail.net', { a: ['93.184.216.36'] });
    // Six exchangers, the sixth inside: a relay tries the later ones when the first refuse.
    const six = ['mx1', 'mx2', 'mx3', 'mx4', 'mx5', 'mx6'].map((h) => `${h}.six-mx.net`);
    dns.names.set('six-mx.net', { mx: six });
    six.forEach((h, i) => dns.names.set(h, { a: [i === 5 ? '10.0.0.5' : `93.184.216.${40 + i}`] }));
    dns.names.set('many-mx.net', {
      mx: Array.from({ length: 11 }, (_, i) => `mx${i}.public-mail.net`),
    });
    const resolve = createHostResolver({
      servers: [dns.server],
      hostsFile: '/nonexistent',
      fallback: async () => [],
    });
    routes = createMailRoutes({ servers: [dns.server], resolve, timeoutMs: 200, tries: 1 });
  });
  afterAll(async () => {
    mailer.close();
    await smtp.close();
    await dns.close();
    tmp.cleanup();
  });

  it('refuses a domain whose MX, or own address, is inside the network; a public one goes', async () => {
    for (const [address, server] of [
      ['x@inside-mail.net', 'inside-mail.net (mx.inside-mail.net)'],
      ['x@no-mx.net', 'no-mx.net'],
      ['x@second-mx.net', 'second-mx.net (mx.inside-mail.net)'],
      ['x@six-mx.net', 'six-mx.net (mx6.six-mx.net)'],
    ] as const) {
      const err = await send(address);
      expect([address, err]).toEqual([address, expect.any(PermanentError)]);
      expect((err as Error).message).toContain(`the mail server of ${server} is at`);
    }
    expect(smtp.messages).toHaveLength(0);
    // Control: the lookups were made, and a public domain's mail goes out.
    expect(dns.asked.get('inside-mail.net')).toBeGreaterThan(0);
    await send('x@public-mail.net');
    expect(smtp.messages.map((m) => m.to)).toEqual([['x@public-mail.net']]);
    // ACTION_PRIVATE_HOSTS lists the exchanger: the operator's own mail server.
    await send('x@inside-mail.net', { ACTION_PRIVATE_HOSTS: 'mx.inside-mail.net' });
    expect(smtp.messages).toHaveLength(2);
    // A domain listing more mail servers than are looked up is not sent to.
    const many = await send('x@many-mx.net');
    expect(many).toBeInstanceOf(PermanentError);
    expect((many as Error).message).toContain('lists 11 mail servers (MX), more than 10');
  });

  /**
   * The lookups run inside the step's slot of the shared SMTP server: a domain whose name
   * servers never answer held it 31 s (a review), and four such steps of one stranger held
   * every portal's mail. A route DNS does not answer in time is left to the relay.
   */
  it('leaves a domain DNS does not answer in time to the SMTP server, after at most 3 s', async () => {
    dns.hang = (name) => name.endsWith('silent-mail.net');
    dns.names.set('silent-mail.net', { mx: ['mx.silent-mail.net'] });
    // DNS's own patience (c-ares) is longer than the step's.
    const patient = createMailRoutes({ servers: [dns.server], timeoutMs: 20_000, tries: 1 });
    const started = Date.now();
    const sent = await send('x@silent-mail.net, y@silent-mail.net', {}, patient);
    const took = Date.now() - started;
    patient.cancel();
    expect(took).toBeGreaterThanOrEqual(MAIL_ROUTE_WAIT_MS - 50);
    expect(took).toBeLessThan(MAIL_ROUTE_WAIT_MS + 2_000);
    expect(sent).toMatchObject({ status: 'succeeded' });
    // Control: it was asked.
    expect(dns.asked.get('silent-mail.net')).toBeGreaterThan(0);
  });
});
