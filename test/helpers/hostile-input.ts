import type { Express } from 'express';

/** A seeded PRNG (mulberry32), so a failing generated input can be reproduced. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Rand {
  rnd: () => number;
  pick<T>(xs: readonly T[]): T;
  int(n: number): number;
  chance(p: number): boolean;
}

function rand(rnd: () => number): Rand {
  return {
    rnd,
    pick: (xs) => xs[Math.floor(rnd() * xs.length)]!,
    int: (n) => Math.floor(rnd() * n),
    chance: (p) => rnd() < p,
  };
}

/** One hostile variant of a valid delivery body (see `hostileBodies`). */
function hostileEventBody(valid: string, r: Rand): Buffer | string {
  const { pick, int } = r;
  const generators: Array<() => Buffer | string> = [
    () => valid.slice(0, int(valid.length)),
    () => valid.slice(0, int(valid.length)) + '%' + pick(['', 'E', 'E2', 'E2%8', 'ZZ', '%%']),
    () => valid.replace(/%5B/g, pick(['[', '%5b', '%5B%5B', ''])),
    () => valid + '&' + 'data' + '[x]'.repeat(1 + int(40)) + '=1',
    () => valid + '&' + Array.from({ length: 100 + int(1000) }, (_, i) => `k${i}=v`).join('&'),
    () =>
      valid +
      pick([
        '&__proto__[polluted]=1',
        '&constructor[prototype][x]=1',
        '&auth[__proto__][a]=1',
        '&data[__proto__]=x',
      ]),
    () =>
      valid.replace(
        'event=ONCRMDEALUPDATE',
        pick(['event[]=x', 'event[a]=b', 'event=', 'event=%00', 'event=ON%0ACRM']),
      ),
    () =>
      valid.replace(
        /auth%5Bmember_id%5D=[^&]*/,
        pick([
          'auth%5Bmember_id%5D%5B%5D=1',
          'auth%5Bmember_id%5D=',
          'auth%5Bmember_id%5D=%00%00',
          'auth%5Bmember_id%5D=' + 'x'.repeat(500),
        ]),
      ),
    () =>
      valid.replace(
        /auth%5Bapplication_token%5D=[^&]*/,
        pick([
          'auth%5Bapplication_token%5D%5Bx%5D=1',
          'auth%5Bapplication_token%5D=',
          'auth%5Bapplication_token%5D=' + '%FF'.repeat(40),
        ]),
      ),
    // Token keys misspelt: the delivery is refused, but what it carries is still a secret.
    () =>
      valid.replace(
        /auth%5B(access_token|refresh_token|application_token)%5D/g,
        (_m, k: string) =>
          `auth%5B${pick([k.toUpperCase(), `${k}+`, k.replace('_', '-'), `%5C${k.slice(1)}`, `${k}%5D%5B`])}%5D`,
      ),
    () =>
      valid.replace(
        /ts=\d+/,
        pick(['ts=-1', 'ts=1e99', 'ts[]=1', 'ts=99999999999999999999', 'ts=%00']),
      ),
    () =>
      valid.replace(
        /data%5BFIELDS%5D%5BID%5D=\d+/,
        pick([
          'data=1',
          'data[]=1',
          'data%5BFIELDS%5D=1',
          'data%5BFIELDS%5D%5BID%5D%5B%5D=1',
          'data%5BFIELDS%5D%5BID%5D=' + '9'.repeat(200),
        ]),
      ),
    () =>
      Buffer.concat([
        Buffer.from(valid.slice(0, int(valid.length))),
        Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0xe2, 0x82]),
      ]),
    () => Buffer.from(Array.from({ length: int(2000) }, () => int(256))),
    () =>
      Array.from({ length: int(300) }, () =>
        pick(['&', '=', '[', ']', '%', 'a', '\u0000', '+', ';']),
      ).join(''),
    () => {
      const chars = valid.split('');
      for (let i = 0; i < 1 + int(10); i++)
        chars[int(chars.length)] = String.fromCharCode(int(128));
      return chars.join('');
    },
    () => 'event=ONCRMDEALUPDATE&' + 'a='.repeat(int(5000)),
    () => valid + '&auth[' + 'x'.repeat(int(3000)) + ']=1',
  ];
  return pick(generators)();
}

/**
 * Hostile variants of a valid delivery body: truncated percent-encodings, deep and wide
 * bracket keys, prototype keys, wrong types, NUL bytes, invalid UTF-8, huge values, random
 * bytes and mutations of the valid body.
 */
export function hostileBodies(valid: string, count: number, seed = 42): Buffer[] {
  const r = rand(prng(seed));
  return Array.from({ length: count }, () => {
    const v = hostileEventBody(valid, r);
    return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  });
}

/** A route the app mounts, read from its router (so a new route is covered automatically). */
export interface MountedRoute {
  /** Upper-case HTTP method. */
  method: string;
  /** Express path, e.g. `/ui/events/:id`. */
  path: string;
  /** The route's handlers in order (for checks such as "guarded by requireAdmin"). */
  handlers: ReadonlyArray<(...args: never[]) => unknown>;
}

interface RouterLayer {
  route?: {
    path: unknown;
    methods: Record<string, boolean>;
    stack: Array<{ handle: (...args: never[]) => unknown }>;
  };
  handle: { stack?: RouterLayer[] };
  rawPath?: unknown;
}

/**
 * Every route of an Express 5 app, walking its router and the routers mounted in it (the
 * `router` package keeps each layer's `rawPath`). Middleware-only layers (static files,
 * session) are not routes and are left out.
 */
export function mountedRoutes(app: Express): MountedRoute[] {
  const out: MountedRoute[] = [];
  const walk = (stack: RouterLayer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const p of paths) {
          if (typeof p !== 'string') continue;
          for (const [m, on] of Object.entries(layer.route.methods)) {
            if (!on || m === '_all') continue;
            out.push({
              method: m.toUpperCase(),
              path: `${prefix}${p}`,
              handlers: layer.route.stack.map((l) => l.handle),
            });
          }
        }
      } else if (Array.isArray(layer.handle.stack)) {
        const raw = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
        walk(layer.handle.stack, `${prefix}${raw}`);
      }
    }
  };
  walk((app as unknown as { router: { stack: RouterLayer[] } }).router.stack, '');
  return out;
}

/** A request ready to send: everything in it may be hostile. */
export interface HostileRequest {
  method: string;
  /** Path and query, as sent on the request line. */
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** Which route it aims at (`POST /ui/rules`) and what kind of body it carries. */
  route: string;
  kind: string;
  /** Bigger than any body limit of the app (the server may reset the connection). */
  huge: boolean;
}

/** Credentials a request may carry; hostile requests use them only some of the time. */
export interface HostileSession {
  /** `b24hooks.sid=…` */
  cookie: string;
  /** The signed session id, for `?s=`. */
  token: string;
  csrf: string;
}

export interface HostileRequestOptions {
  /** A valid event delivery body for `eventPath` (mutated by `hostileBodies`' generators). */
  validEventBody: string;
  eventPath: string;
  /** Sessions to use some of the time (an admin and a non-admin, say). */
  sessions: readonly HostileSession[];
  /** Values for `:params` that name real rows (an event id, a deal id). */
  realIds?: readonly string[];
  seed?: number;
}

const FORM_KEYS = [
  '_csrf',
  'map',
  'event',
  'id',
  'from',
  'to',
  'status',
  'entity',
  'q',
  'rerunSucceeded',
  'telegram',
  'email',
  'events',
  'save',
  'AUTH_ID',
  'AUTH_EXPIRES',
  'REFRESH_ID',
  'SERVER_ENDPOINT',
  'member_id',
  'status',
  'PLACEMENT',
  'PLACEMENT_OPTIONS',
  'APPLICATION_TOKEN',
  'APPLICATION_SCOPE',
  'auth[member_id]',
  'auth[access_token]',
  'auth[domain]',
  'auth[client_endpoint]',
  'auth[server_endpoint]',
  'data[FIELDS][ID]',
];

const QUERY_KEYS = [
  'DOMAIN',
  'PROTOCOL',
  'LANG',
  'APP_SID',
  's',
  'before',
  'from',
  'to',
  'event',
  'status',
  'entity',
  'q',
  'retried',
  'rerunSucceeded',
];

const PARAM_VALUES = [
  '1',
  '0',
  '-1',
  '1e400',
  '1.5',
  '99999999999999999999999',
  '9007199254740993',
  'NaN',
  'abc',
  '%00',
  '%E2%82',
  '%ZZ',
  '%',
  '..%2F..%2Fetc%2Fpasswd',
  '%2e%2e',
  '%3Cscript%3E',
  'x'.repeat(3000),
  '__proto__',
  'constructor',
];

const CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/x-www-form-urlencoded; charset=iso-8859-1',
  'application/x-www-form-urlencoded; charset=utf-7',
  'application/x-www-form-urlencoded; charset="',
  'application/x-www-form-urlencoded, application/json',
  'APPLICATION/X-WWW-FORM-URLENCODED',
  'application/json',
  'application/json; charset=utf-16',
  'text/plain',
  'text/html',
  'multipart/form-data; boundary=----x',
  'multipart/form-data',
  'application/xml',
  'application/octet-stream',
  ';;;=',
  '*/*',
  '',
];

/** Values that are wrong in every way a form field can be. */
function hostileValue(r: Rand): string {
  const { pick, int } = r;
  return pick<() => string>([
    () => '',
    () => 'x',
    () => '%00',
    () => '%00'.repeat(1 + int(50)),
    () => pick(['%', '%E', '%E2', '%E2%8', '%ZZ', '%%', '%u0041']),
    () => pick(['%FF%FE', '%C0%BC', '%C3%28', '%ED%A0%80', '%F4%90%80%80', '%EF%BB%BF']),
    () => 'A'.repeat(1000 + int(60_000)),
    () => encodeURIComponent('{"rules":[{"name":1,"on":"x","actions":{}}]}'),
    () => encodeURIComponent('{"rules":' + '['.repeat(1 + int(20_000))),
    () => encodeURIComponent(JSON.stringify({ rules: [{ __proto__: { x: 1 } }] })),
    () => encodeURIComponent('{"__proto__":{"polluted":1},"constructor":{"prototype":{"y":1}}}'),
    () => pick(['1e400', '-1', 'NaN', 'Infinity', '9'.repeat(400), '0x10', 'true', 'null']),
    () => pick(['2026-13-45', '2026-01-01T25:61', '0000-00-00', '9999-12-31T23:59:59']),
    () =>
      encodeURIComponent(pick(["' OR 1=1 --", '"; DROP TABLE events; --', '<script>x</script>'])),
    () => encodeURIComponent(String.fromCharCode(...Array.from({ length: 40 }, () => int(0x3000)))),
    () => encodeURIComponent('\u202e\u200b\ufeff'.slice(0, 1 + int(3))) + pick(['', '%ED%A0%80']),
    () => encodeURIComponent(pick(['ONCRMDEALUPDATE', 'ONAPPINSTALL', 'onCrmDealAdd', 'X'])),
    () => pick(['+', '++', '+%2B+', '=', '==', '&', '[', ']']),
  ])();
}

function hostileKey(r: Rand): string {
  const { pick, int } = r;
  const key = pick(FORM_KEYS).replace(/\[/g, '%5B').replace(/\]/g, '%5D');
  return pick<() => string>([
    () => key,
    () => key,
    () => key,
    () => `${key}[]`,
    () => `${key}[a][b]`,
    () => `${key}${'[x]'.repeat(1 + int(3000))}`,
    () => `${key}%5B%5D`,
    () => pick(['__proto__', '__proto__[polluted]', 'constructor[prototype][x]', 'hasOwnProperty']),
    () => 'k'.repeat(1 + int(5000)),
    () => '',
    () => `${key}%`,
  ])();
}

/** A hostile form body: wrong keys, repeated keys (arrays), bad encodings, odd bytes. */
function hostileForm(r: Rand, csrf: string | undefined): Buffer | string {
  const { pick, int, chance } = r;
  return pick<() => Buffer | string>([
    () => {
      const n = 1 + int(12);
      const parts: string[] = [];
      for (let i = 0; i < n; i++) parts.push(`${hostileKey(r)}=${hostileValue(r)}`);
      if (csrf !== undefined) {
        parts.splice(
          int(parts.length + 1),
          0,
          `_csrf=${encodeURIComponent(csrf)}${chance(0.2) ? '&_csrf=x' : ''}`,
        );
      }
      return parts.join(pick(['&', '&', '&', ';', '&&', '&=&']));
    },
    () => Array.from({ length: 1001 + int(3000) }, (_, i) => `k${i}=v`).join('&'),
    () => 'a' + '[b]'.repeat(5000) + '=1',
    () => Buffer.from(Array.from({ length: int(4000) }, () => int(256))),
    () =>
      Buffer.concat([
        Buffer.from('map='),
        Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0xe2, 0x82, 0x00, 0x00]),
        Buffer.from('&event=ON\u0000CRM'),
      ]),
    () => JSON.stringify({ _csrf: csrf, map: { rules: 'x' }, events: [{}] }),
    () => '['.repeat(10_000) + ']'.repeat(int(10_000)),
    () => '{"a":' + '{"a":'.repeat(5000) + '1' + '}'.repeat(int(5000)),
    () => '--x\r\nContent-Disposition: form-data; name="map"\r\n\r\n{}\r\n--x--',
    () => '',
    () => '\u0000'.repeat(1 + int(100)),
    () => Buffer.from('\ufeffmap=%7B%7D', 'utf16le'),
  ])();
}

function hostileQuery(r: Rand, token: string | undefined): string {
  const { pick, int, chance } = r;
  if (chance(0.25)) return token ? `?s=${encodeURIComponent(token)}` : '';
  const parts: string[] = [];
  for (let i = 0, n = 1 + int(6); i < n; i++) {
    const key = pick(QUERY_KEYS);
    parts.push(
      pick<() => string>([
        () => `${key}=${hostileValue(r).slice(0, 2000)}`,
        () => `${key}[]=1&${key}[]=2`,
        () => `${key}=a&${key}=b`,
        () => `${key}[a][b]=c`,
        () => `${key}=${encodeURIComponent(token ?? 'x')}`,
        () => `${key}=s%3A${'A'.repeat(int(600))}.sig`,
        () => pick(['%', '%%', '&&&', '=', '=x', '&=', '%E2%82', '+']),
        () =>
          chance(0.2)
            ? Array.from({ length: 500 + int(1500) }, (_, j) => `p${j}=1`).join('&')
            : `${key}=${'%41'.repeat(int(3000))}`,
      ])(),
    );
  }
  if (token) parts.splice(int(parts.length + 1), 0, `s=${encodeURIComponent(token)}`);
  return `?${parts.join('&')}`;
}

function hostileCookie(r: Rand, s: HostileSession | undefined): string | undefined {
  const { pick, int } = r;
  return pick<() => string | undefined>([
    () => undefined,
    () => 'b24hooks.sid=%E2%82',
    () => 'b24hooks.sid=s%3Afake.signature',
    () => `b24hooks.sid=${'A'.repeat(4000 + int(4000))}`,
    () => `${s?.cookie ?? 'b24hooks.sid=x'}; b24hooks.sid=s%3Aother.sig`,
    () => Array.from({ length: 200 }, (_, i) => `c${i}=${i}`).join('; '),
    () => ';;;==;',
    () => 'b24hooks.sid',
    () => '__proto__=1; constructor=2',
  ])();
}

function hostilePath(r: Rand, path: string, realIds: readonly string[]): string {
  return path.replace(/:(\w+)/g, () =>
    r.chance(0.2) && realIds.length ? r.pick(realIds) : r.pick(PARAM_VALUES),
  );
}

/**
 * Hostile requests spread over `routes` (plus the static files, the event route with
 * mutated deliveries and unknown methods): hostile paths, query strings, cookies, session
 * tokens and CSRF tokens used right and wrong, every content type and body shape.
 */
export function* hostileRequests(
  routes: readonly MountedRoute[],
  count: number,
  opts: HostileRequestOptions,
): Generator<HostileRequest> {
  const r = rand(prng(opts.seed ?? 20261127));
  const { pick, chance, int } = r;
  const targets: Array<{ method: string; path: string }> = [
    ...routes.map((x) => ({ method: x.method, path: x.path })),
    { method: 'POST', path: opts.eventPath },
    { method: 'GET', path: '/assets/:file' },
  ];
  const realIds = opts.realIds ?? [];
  for (let i = 0; i < count; i++) {
    const target = pick(targets);
    let method = target.method;
    if (chance(0.05)) method = pick(['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE']);
    else if (chance(0.05)) method = method === 'GET' ? 'POST' : 'GET';
    const path =
      target.path === '/assets/:file'
        ? `/assets/${pick(['app.css', 'app.js', '..%2F..%2Fpackage.json', '%E2', '%00', '.env', 'vendor/chart.umd.js', 'x'.repeat(300)])}`
        : hostilePath(r, target.path, realIds);
    const headers: Record<string, string> = {};
    // Most requests carry a real session (cookie or `?s=`) and often its CSRF token, so the
    // hostile parts reach the page handlers instead of stopping at the session gate.
    const session = opts.sessions.length && chance(0.65) ? pick(opts.sessions) : undefined;
    let token: string | undefined;
    if (session && chance(0.7)) headers.cookie = session.cookie;
    else if (session) token = session.token;
    else {
      const cookie = hostileCookie(r, pick(opts.sessions));
      if (cookie) headers.cookie = cookie;
    }
    let bodyCsrf: string | undefined;
    const csrfWay = r.rnd();
    const csrf = session ? session.csrf : opts.sessions.length ? pick(opts.sessions).csrf : '';
    if (csrfWay < 0.4) bodyCsrf = csrf;
    else if (csrfWay < 0.7) headers['x-csrf-token'] = csrf;
    else if (csrfWay < 0.85) bodyCsrf = pick(['', 'bogus', csrf.slice(1), `${csrf}x`]);
    if (chance(0.3)) {
      headers.accept = pick([
        'application/json',
        'text/html',
        '*/*',
        '',
        'x/y;q=bogus',
        'a'.repeat(3000),
      ]);
    }
    if (chance(0.05)) headers['x-forwarded-for'] = pick(['1.2.3.4', 'garbage', '::1, ::1', ',,,']);
    if (chance(0.05)) headers.origin = pick(['null', 'https://evil.example', 'garbage']);
    let body: Buffer = Buffer.alloc(0);
    let kind = 'no body';
    let huge = false;
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS' && method !== 'TRACE') {
      if (chance(0.005)) {
        huge = true;
        kind = 'huge';
        body = Buffer.from(`map=${'A'.repeat(1_100_000 + int(500_000))}`);
      } else if (target.path === opts.eventPath && chance(0.7)) {
        kind = 'mutated delivery';
        const v = hostileEventBody(opts.validEventBody, r);
        body = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      } else {
        kind = 'hostile form';
        const v = hostileForm(r, bodyCsrf);
        body = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      }
      const type = chance(0.6) ? CONTENT_TYPES[0]! : pick(CONTENT_TYPES);
      if (type) headers['content-type'] = type;
      if (chance(0.04)) headers['content-encoding'] = pick(['gzip', 'deflate', 'br', 'x-unknown']);
    }
    const query = hostileQuery(r, token);
    yield {
      method,
      path: `${path}${path.includes('?') ? '&' : ''}${query}`,
      headers,
      body,
      route: `${target.method} ${target.path}`,
      kind,
      huge,
    };
  }
}
