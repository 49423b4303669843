import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import { createApp } from '../../../server/routes/app.js';
import { connectWebhook } from '../../../server/install/connect-webhook.js';
import { appParts } from '../../../server/routes/index.js';
import { csrfProtection, requireAdmin } from '../../../server/ui/context.js';
import { signedSessionId } from '../../../server/ui/session.js';
import { buildEventAuth, buildEventBody } from '../../emulator/bitrix-emulator.js';
import type { EmulatedPortal } from '../../emulator/bitrix-emulator.js';
import { startRecordingReceiver, unusedLocalUrl } from '../../emulator/recording-receiver.js';
import { openFrameSession, frameEntry, type FrameSession } from '../../helpers/frame-session.js';
import { mountedRoutes, type MountedRoute } from '../../helpers/hostile-input.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { CLIENT_SECRET, startInstallHarness } from '../../helpers/install-harness.js';
import { privateAddressRows } from '../lib/private-addresses.js';
import type { ReliabilityContext, Row, Scenario } from '../types.js';
import { lifecycleTrustRow } from './access-trust.js';
import { keepDataDir } from './secrets.js';

interface Answer {
  status: number;
  body: string;
}

interface Creds {
  cookie?: string;
  token?: string;
  csrf?: string;
  csrfHeader?: string;
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** `401: 40, 405: 2` */
function byStatus(answers: readonly Answer[]): string {
  const m = new Map<number, number>();
  for (const a of answers) m.set(a.status, (m.get(a.status) ?? 0) + 1);
  return [...m.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([s, n]) => `${s}: ${n}`)
    .join(', ');
}

/**
 * Every row of every table but `sessions` (which each request touches), hashed: refused
 * requests must leave it exactly as it was.
 */
async function fingerprint(db: Knex, where?: (table: string) => string | undefined) {
  const tables = (
    (await db.raw(`select name from sqlite_master where type = 'table' order by name`)) as Array<{
      name: string;
    }>
  )
    .map((t) => t.name)
    .filter((n) => n !== 'sessions' && !n.startsWith('knex_') && !n.startsWith('sqlite_'));
  const hash = createHash('sha256');
  for (const table of tables) {
    const filter = where ? where(table) : undefined;
    if (where && filter === undefined) continue;
    const rows = (await db.raw(
      `select * from "${table}"${filter ? ` where ${filter}` : ''} order by rowid`,
    )) as unknown[];
    hash.update(`${table}:${JSON.stringify(rows)}\n`);
  }
  return hash.digest('hex');
}

/**
 * The access matrix and the allowlists. Two portals (A and B) on one app; every UI route,
 * read from the router, is requested without a session, with B's session on A's records, as
 * A's non-admin on admin actions and without a valid CSRF token. Then install, frame entries
 * and deliveries name a host outside B24_PORTAL_HOSTS / B24_OAUTH_SERVERS.
 */
export const scenario: Scenario = async (ctx: ReliabilityContext): Promise<Row[]> => [
  ...(await accessRows(ctx)),
  ...(await privateAddressRows(ctx)),
];

async function accessRows(ctx: ReliabilityContext): Promise<Row[]> {
  const portA = new URL(await unusedLocalUrl()).port;
  const portB = new URL(await unusedLocalUrl()).port;
  const receiver = await startRecordingReceiver();
  const sink = await startHttpSink();
  const h = await startInstallHarness({
    B24_PORTAL_HOSTS: `127.0.0.1:${portA},127.0.0.1:${portB}`,
  });
  const bodies: string[] = [];
  const keep = (text: string) => {
    if (text) bodies.push(text);
  };
  try {
    const db = h.t.deps.db;
    const drain = async (p: EmulatedPortal) => {
      await p.whenIdle();
      await h.services.intake.drain();
      await h.services.worker.drain();
    };
    const A = await h.addPortal({ port: Number(portA) });
    const B = await h.addPortal({ port: Number(portB) });
    for (const p of [A, B]) {
      const res = await p.install();
      if (res.status !== 200) throw new Error(`install answered ${res.status}: ${res.body}`);
      await p.finishInstall();
      await drain(p);
    }
    const base = h.appUrl;
    const call = async (method: string, path: string, c: Creds, form?: FormFields) => {
      const url = new URL(path, base);
      if (c.token) url.searchParams.set('s', c.token);
      const headers: Record<string, string> = {};
      if (c.cookie) headers.cookie = c.cookie;
      if (c.csrfHeader !== undefined) headers['x-csrf-token'] = c.csrfHeader;
      let body: string | undefined;
      if (method !== 'GET') {
        const f = new URLSearchParams();
        for (const [k, v] of Object.entries(form ?? {})) {
          for (const x of Array.isArray(v) ? v : [v]) f.append(k, x);
        }
        if (c.csrf !== undefined) f.set('_csrf', c.csrf);
        body = f.toString();
        headers['content-type'] = 'application/x-www-form-urlencoded';
      }
      const res = await fetch(url, { method, headers, body, redirect: 'manual' });
      const a = { status: res.status, body: await res.text() };
      keep(a.body);
      return a;
    };

    // Portal A: its own rule map, alert address, a processed deal and a replay run.
    const marker = createHash('sha256').update(A.memberId).digest('hex').slice(0, 10);
    const ruleName = `Alpha private rule ${marker}`;
    const alertEmail = `alpha-${marker}@example.com`;
    const adminA = await openFrameSession(base, A, 1, keep);
    const adminA2 = await openFrameSession(base, A, 1, keep);
    const readerA = await openFrameSession(base, A, 2, keep);
    const adminB = await openFrameSession(base, B, 1, keep);
    const ok = (a: Answer, what: string) => {
      if (a.status >= 400) throw new Error(`${what} answered ${a.status}: ${a.body.slice(0, 200)}`);
    };
    ok(
      await call('POST', '/ui/rules', adminA, {
        map: JSON.stringify({
          rules: [
            {
              name: ruleName,
              on: ['ONCRMDEALUPDATE'],
              when: [{ field: 'STAGE_ID', becomes: 'WON' }],
              actions: [{ type: 'http', method: 'POST', url: `${sink.url}/alpha`, body: {} }],
            },
          ],
        }),
      }),
      "saving A's rules",
    );
    ok(await call('POST', '/ui/alerts', adminA, { email: alertEmail }), "saving A's alerts");
    const dealA = await A.addDeal({ TITLE: `Alpha deal ${marker}`, STAGE_ID: 'NEW' });
    await A.updateDeal(dealA.id, { STAGE_ID: 'WON' });
    await drain(A);
    const dealB = await B.addDeal({ TITLE: 'Beta deal', STAGE_ID: 'NEW' });
    await drain(B);
    const run = await call('POST', '/ui/replay/run', adminA, {
      from: '2000-01-01',
      to: '2100-01-01',
    });
    ok(run, 'a replay run of A');
    const portalA = await db('portals').where({ member_id: A.memberId }).first('id');
    const eventA = await db('events')
      .where({ portal_id: portalA.id })
      .orderBy('id', 'desc')
      .first('id');
    const runA = String(
      (await db('replay_runs').where({ portal_id: portalA.id }).orderBy('id', 'desc').first('id'))
        ?.id ?? '',
    );
    if (!eventA || !runA) throw new Error('portal A has no event or replay run to aim at');
    await h.services.worker.drain();

    // Every UI route, from the router: the entry handlers and everything under /ui.
    const m = h.t.deps.manifest;
    const entryPaths = new Set([m.handlers.app, ...m.placements.map((p) => p.handler)]);
    const routes = mountedRoutes(createApp(h.t.deps, appParts(h.t.deps, h.services).routes));
    const ui = routes.filter((r) => r.path.startsWith('/ui') || entryPaths.has(r.path));
    const pages = ui.filter((r) => !entryPaths.has(r.path));
    const idFor = (path: string) =>
      path.startsWith('/ui/replay/')
        ? runA
        : path.startsWith('/ui/deal/')
          ? dealA.id
          : String(eventA.id);
    const concrete = (r: MountedRoute) => r.path.replace(/:(\w+)/g, () => idFor(r.path));
    const isAdminAction = (r: MountedRoute) =>
      r.method !== 'GET' || r.handlers.includes(requireAdmin as never);
    const controlRule = {
      name: 'Access control rule',
      on: ['ONCRMLEADDELETE'],
      actions: [{ type: 'http', method: 'POST', url: `${sink.url}/control`, body: {} }],
    };
    const wouldSucceed: FormFields = {
      // One rule that never fires, which the map page's toggle and move (routed after the
      // save) then turn off and keep first.
      map: JSON.stringify({ rules: [controlRule] }),
      // The builder's save, dry run and "send this step once" take one rule and a step; the
      // save edits the rule saved above (a new rule may not take a name in use).
      rule: JSON.stringify(controlRule),
      original: controlRule.name,
      index: '0',
      name: 'Access control rule',
      enabled: '0',
      at: '0',
      dir: 'up',
      email: 'ops@example.com',
      telegram: '',
      from: '2000-01-01',
      to: '2100-01-01',
      event: 'ONCRMDEALUPDATE',
      id: dealA.id,
      save: '1',
      events: ['ONCRMDEALADD', 'ONCRMDEALUPDATE'],
      hours: '1',
      // Retry selected rows (/ui/events/retry) takes the ids of the portal's own events.
      ids: String(eventA.id),
    };
    const markersOfA = [
      A.memberId,
      ruleName,
      alertEmail,
      new RegExp(`127\\.0\\.0\\.1:${portA}(?!\\d)`),
    ] as const;
    const markersOfB = [B.memberId, new RegExp(`127\\.0\\.0\\.1:${portB}(?!\\d)`)] as const;
    const leaks = (a: Answer, markers: ReadonlyArray<string | RegExp>) =>
      markers.some((x) => (typeof x === 'string' ? a.body.includes(x) : x.test(a.body)));
    // Control: A's own admin does see each marker somewhere (so an absence means something).
    const own = [
      await call('GET', '/ui/rules', adminA),
      await call('GET', '/ui/alerts', adminA),
      await call('GET', `/ui/events/${eventA.id}`, adminA),
      await call('GET', '/ui', adminA),
    ];
    const markersSeen = markersOfA.filter((x) => own.some((a) => leaks(a, [x]))).length;

    // 1. No session: nothing, a forged cookie, a forged ?s=, A's session id signed with another key.
    const sid = adminA.token.slice(2, adminA.token.lastIndexOf('.'));
    const noSession: Creds[] = [
      {},
      { cookie: 'b24hooks.sid=s%3Aforged.c2lnbmF0dXJl' },
      { token: 's:forged.c2lnbmF0dXJl' },
      { token: signedSessionId(sid, 'another-secret-0123456789') },
    ];
    const stateBefore = await fingerprint(db);
    const anon: Answer[] = [];
    let anonLeaks = 0;
    for (const r of ui) {
      for (const c of noSession) {
        const a = await call(r.method, concrete(r), { ...c, csrf: adminA.csrf }, wouldSucceed);
        anon.push(a);
        if (leaks(a, [...markersOfA, ...markersOfB])) anonLeaks += 1;
      }
    }
    const anonRefused = anon.filter((a) => a.status >= 400 && a.status < 500).length;
    const anonUnchanged = (await fingerprint(db)) === stateBefore;

    // 2. B's admin on every page with A's ids; B acting on B must leave A's rows alone.
    const rowsOfA = (table: string) =>
      ({
        portals: `id = ${portalA.id}`,
        events: `portal_id = ${portalA.id}`,
        jobs: `portal_id = ${portalA.id}`,
        replay_runs: `portal_id = ${portalA.id}`,
        settings: `scope = '${A.memberId}'`,
        action_runs: `event_id in (select id from events where portal_id = ${portalA.id})`,
      })[table];
    const aBefore = await fingerprint(db, rowsOfA);
    const cross: Answer[] = [];
    let crossLeaks = 0;
    let idRoutes = 0;
    let idRefused = 0;
    for (const r of pages) {
      const a = await call(r.method, concrete(r), adminB, wouldSucceed);
      cross.push(a);
      if (leaks(a, markersOfA)) crossLeaks += 1;
      if (r.path.includes(':') && !r.path.startsWith('/ui/deal/')) {
        idRoutes += 1;
        if (a.status === 404 || a.status === 403) idRefused += 1;
      }
    }
    await h.services.worker.drain();
    const aUnchanged = (await fingerprint(db, rowsOfA)) === aBefore;
    const crossErrors = cross.filter((a) => a.status >= 500).length;

    // 3. A's non-admin on admin actions, with its own valid CSRF token.
    const before3 = await fingerprint(db);
    const admin = pages.filter(isAdminAction);
    const nonAdmin: Answer[] = [];
    let nonAdminLeaks = 0;
    for (const r of admin) {
      const a = await call(r.method, concrete(r), readerA, wouldSucceed);
      nonAdmin.push(a);
      if (r.method === 'GET' && leaks(a, [ruleName])) nonAdminLeaks += 1;
    }
    const nonAdminRefused = nonAdmin.filter((a) => a.status === 403).length;
    const nonAdminUnchanged = (await fingerprint(db)) === before3;

    // 4. A's admin on every state-changing route without a valid CSRF token.
    const changing = pages.filter((r) => r.method !== 'GET');
    const withoutCsrf: Creds[] = [
      { cookie: adminA.cookie },
      { cookie: adminA.cookie, csrf: 'not-the-token' },
      { cookie: adminA.cookie, csrf: adminB.csrf },
      { cookie: adminA.cookie, csrf: adminA2.csrf },
      { cookie: adminA.cookie, csrfHeader: readerA.csrf },
      { token: adminA.token, csrf: '' },
    ];
    const before4 = await fingerprint(db);
    const noCsrf: Answer[] = [];
    for (const r of changing) {
      for (const c of withoutCsrf) noCsrf.push(await call(r.method, concrete(r), c, wouldSucceed));
    }
    const noCsrfRefused = noCsrf.filter((a) => a.status === 403).length;
    const noCsrfUnchanged = (await fingerprint(db)) === before4;
    const unguarded = changing.filter((r) => !r.handlers.includes(csrfProtection as never));

    // Control: the same requests with the token get past the CSRF check (the refusals above
    // are real). A route may still refuse the form itself (400: linking a Telegram chat
    // needs the bot and a code the chat received), which is not the CSRF check's 403.
    let controlOk = 0;
    const controlFailed: string[] = [];
    for (const r of changing) {
      const a = await call(r.method, concrete(r), adminA, wouldSucceed);
      if (a.status <= 400) controlOk += 1;
      else controlFailed.push(`${r.method} ${r.path} ${a.status}`);
    }
    await h.services.worker.drain();

    // 5. Allowlists: everything names the receiver (127.0.0.1 on a port not allowed).
    const outside = new URL(receiver.url).host;
    const authA = A.issueUserAuth(1);
    const installForm = (over: Record<string, string>, query: Record<string, string>) => ({
      url: `${base}${m.handlers.install}?${new URLSearchParams({
        DOMAIN: A.domain,
        PROTOCOL: '0',
        LANG: 'en',
        APP_SID: 'x1',
        ...query,
      })}`,
      body: new URLSearchParams({
        AUTH_ID: authA.accessToken,
        AUTH_EXPIRES: '3600',
        REFRESH_ID: authA.refreshToken,
        SERVER_ENDPOINT: authA.serverEndpoint,
        member_id: A.memberId,
        status: 'L',
        PLACEMENT: 'DEFAULT',
        PLACEMENT_OPTIONS: '{}',
        ...over,
      }).toString(),
    });
    const scriptInstall = (auth: Record<string, string>) => ({
      url: `${base}${m.handlers.install}`,
      body: buildEventBody({
        event: 'ONAPPINSTALL',
        eventHandlerId: 1,
        data: { VERSION: '1', ACTIVE: 'Y', INSTALLED: 'Y', LANGUAGE_ID: 'en' },
        ts: Math.floor(Date.now() / 1000),
        auth: {
          ...buildEventAuth({
            domain: A.domain,
            clientEndpoint: A.clientEndpoint,
            serverEndpoint: authA.serverEndpoint,
            memberId: A.memberId,
            applicationToken: A.applicationToken,
            scope: 'crm',
            status: 'L',
            tokens: {
              accessToken: authA.accessToken,
              refreshToken: authA.refreshToken,
              expires: authA.expires,
              expiresIn: 3600,
              userId: 1,
            },
          }),
          ...auth,
        },
      }),
    });
    const delivery = (event: string, memberId: string, appToken: string) => ({
      url: `${base}${m.handlers.events}`,
      body: buildEventBody({
        event,
        eventHandlerId: 7,
        data: { FIELDS: { ID: dealA.id } },
        ts: Math.floor(Date.now() / 1000),
        auth: buildEventAuth({
          domain: outside,
          clientEndpoint: `${receiver.url}/rest/`,
          serverEndpoint: `${receiver.url}/rest/`,
          memberId,
          applicationToken: appToken,
          scope: 'crm',
          status: 'L',
          tokens: {
            accessToken: authA.accessToken,
            refreshToken: authA.refreshToken,
            expires: authA.expires,
            expiresIn: 3600,
            userId: 1,
          },
        }),
      }),
    });
    const unknownMember = 'c0ffee' + marker;
    // Installs and frame entries must be refused; deliveries are verified by the portal's
    // application token and may be stored, but nothing may follow the endpoints they name.
    const attempts: Array<{ what: string; url: string; body: string }> = [
      {
        what: 'install, DOMAIN outside',
        ...installForm({ member_id: unknownMember }, { DOMAIN: outside }),
      },
      { what: 'install, known member_id, DOMAIN outside', ...installForm({}, { DOMAIN: outside }) },
      {
        what: 'install, SERVER_ENDPOINT outside',
        ...installForm({ SERVER_ENDPOINT: `${receiver.url}/rest/` }, {}),
      },
      {
        what: 'script install, client_endpoint outside',
        ...scriptInstall({ client_endpoint: `${receiver.url}/rest/` }),
      },
      {
        what: 'script install, server_endpoint outside',
        ...scriptInstall({ server_endpoint: `${receiver.url}/rest/` }),
      },
      {
        what: 'script install, domain outside',
        ...scriptInstall({ domain: outside, client_endpoint: `${receiver.url}/rest/` }),
      },
      {
        what: 'script install, new member, domain outside',
        ...scriptInstall({
          domain: outside,
          member_id: unknownMember,
          client_endpoint: `${receiver.url}/rest/`,
        }),
      },
      ...[m.handlers.app, ...m.placements.map((p) => p.handler)].map((path) => ({
        what: `frame entry ${path}, DOMAIN outside`,
        ...frameEntry(base, A, { path, domain: outside }),
      })),
      {
        what: 'frame entry, unknown member_id, DOMAIN outside',
        ...frameEntry(base, A, { domain: outside, memberId: unknownMember }),
      },
      {
        what: 'delivery: ONAPPINSTALL from an unknown portal outside',
        ...delivery('ONAPPINSTALL', unknownMember, 'f'.repeat(32)),
      },
      {
        what: "delivery: A's ONCRMDEALUPDATE naming endpoints outside",
        ...delivery('ONCRMDEALUPDATE', A.memberId, A.applicationToken),
      },
      {
        what: "delivery: A's ONAPPUPDATE naming endpoints outside",
        ...delivery('ONAPPUPDATE', A.memberId, A.applicationToken),
      },
    ];
    const allowAnswers: Array<{ what: string; status: number }> = [];
    for (const at of attempts) {
      const res = await fetch(at.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: at.body,
        redirect: 'manual',
      });
      keep(await res.text());
      allowAnswers.push({ what: at.what, status: res.status });
    }
    await drain(A);
    // A page that calls the portal after A's access token expired: the refresh goes to the
    // stored OAuth server, never to the one the deliveries named.
    A.expireAccessTokens();
    keep((await call('GET', '/ui/subscriptions', adminA)).body);
    await drain(A);
    let webhookRefused = false;
    try {
      await connectWebhook(h.t.deps, {
        webhookUrl: `${receiver.url}/rest/1/abcdef0123456789/`,
        applicationToken: 'a'.repeat(32),
        memberId: unknownMember,
      });
    } catch {
      webhookRefused = true;
    }
    const reached = receiver.requests.length;
    const secretThere = receiver.requests.filter((r) =>
      `${r.path} ${r.body} ${JSON.stringify(r.headers)}`.includes(CLIENT_SECRET),
    ).length;
    const isDelivery = (a: { what: string }) => a.what.startsWith('delivery');
    const installsRefused = allowAnswers.filter(
      (a) => !isDelivery(a) && a.status >= 400 && a.status < 500,
    ).length;
    const installs = allowAnswers.filter((a) => !isDelivery(a)).length;
    const deliveries = allowAnswers.filter(isDelivery);
    ctx.logs.push(
      `access: allowlist attempts ${JSON.stringify(allowAnswers)}; receiver got ${reached}`,
    );
    const trust = await lifecycleTrustRow(h, A, B, keep);

    return [
      {
        area: 'Access',
        check: `every UI route without a session (${ui.length} routes from the router × ${noSession.length}: none, forged cookie, forged ?s=, id signed with another key)`,
        measured: `${fmt(anon.length)} requests, ${fmt(anonRefused)} refused (${byStatus(anon)}) · portal data in ${anonLeaks} answers · tables ${anonUnchanged ? 'unchanged' : 'CHANGED'}`,
        expected: 'all refused, 0 leaks',
        pass: anonRefused === anon.length && anonLeaks === 0 && anonUnchanged,
      },
      {
        area: 'Access',
        check: `another portal's session: B's admin on all ${pages.length} pages, aimed at A's event and replay run (and A's deal id, which on B names B's deal)`,
        measured: `${cross.length} requests · A's records refused ${idRefused} of ${idRoutes} · A's data (${markersOfA.length} markers, ${markersSeen} seen by A's admin) in ${crossLeaks} answers · A's rows ${aUnchanged ? 'unchanged' : 'CHANGED'} · 5xx ${crossErrors}`,
        expected: "all of A's records refused, 0 leaks",
        pass:
          idRoutes > 0 &&
          idRefused === idRoutes &&
          crossLeaks === 0 &&
          markersSeen === markersOfA.length &&
          aUnchanged &&
          !crossErrors,
      },
      {
        area: 'Access',
        check: `non-admin on admin actions (${admin.length} routes: requireAdmin or state-changing), with a valid CSRF token`,
        measured: `${nonAdmin.length} requests, ${nonAdminRefused} refused (${byStatus(nonAdmin)}) · tables ${nonAdminUnchanged ? 'unchanged' : 'CHANGED'}${nonAdminLeaks ? ` · admin data in ${nonAdminLeaks}` : ''}`,
        expected: 'all refused (403)',
        pass:
          admin.length > 0 &&
          nonAdminRefused === nonAdmin.length &&
          nonAdminUnchanged &&
          nonAdminLeaks === 0,
      },
      {
        area: 'Access',
        check: `state-changing requests without a valid CSRF token (${changing.length} routes × ${withoutCsrf.length}: missing, wrong, another portal's, another session's, header of another user, token-only session)`,
        measured: `${noCsrf.length} requests, ${noCsrfRefused} refused (${byStatus(noCsrf)}) · tables ${noCsrfUnchanged ? 'unchanged' : 'CHANGED'} · routes without csrfProtection ${unguarded.length} · with the token ${controlOk} of ${changing.length} past the CSRF check${controlFailed.length ? ` (not: ${controlFailed.join(', ')})` : ''}`,
        expected: 'all refused (403)',
        pass:
          changing.length > 0 &&
          noCsrfRefused === noCsrf.length &&
          noCsrfUnchanged &&
          unguarded.length === 0 &&
          controlOk === changing.length,
      },
      {
        area: 'Allowlists',
        check: `install, frame entry, deliveries, token refresh and connect-webhook naming a host outside B24_PORTAL_HOSTS / B24_OAUTH_SERVERS (${attempts.length + 2} attempts)`,
        measured: `installs and entries refused ${installsRefused} of ${installs} · deliveries answered ${deliveries.map((d) => d.status).join('/')} and processed · webhook refused ${webhookRefused ? 'yes' : 'no'} · requests that reached the outside host ${reached} · client secret sent there ${secretThere}`,
        expected: '0 requests to that host',
        pass: reached === 0 && installsRefused === installs && webhookRefused,
      },
      trust,
    ];
  } finally {
    await h.stopApp();
    ctx.dataDirs.push(keepDataDir(h.t.dir, 'access'));
    ctx.logs.push(...h.t.logs.lines);
    for (const b of bodies) ctx.pages.push(b);
    for (const t of h.emu.issuedTokens()) ctx.issuedTokens.add(t);
    await h.close();
    await receiver.close();
    await sink.close();
  }
}

type FormFields = Record<string, string | string[]>;
