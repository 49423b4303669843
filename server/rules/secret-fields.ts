import type { SecretBox } from '../lib/crypto.js';
import { PermanentError } from '../lib/retry-errors.js';
import {
  CREDENTIAL_MASK,
  maskUrlText,
  secretParams,
  urlHasCredentials,
} from '../lib/url-secrets.js';
import type { Action, EventMap, HttpAction, Secret } from './model.js';
import { jsonPath, type MapError } from './validate.js';

/**
 * Which fields of a step hold credentials, and how a map holds them.
 *
 * Credential fields: an `http` step's `secret`, the values of its `headers` except a few that
 * never carry one (PLAIN_HEADERS), and its `url` when it carries user:password, a query
 * parameter named like a key or token, or a key in its path (a webhook URL). A map as written holds them as text or as
 * `{"$env": "NAME"}` (resolved when the step is sent, from the variables the operator lists
 * in ACTION_SECRET_ENV). A stored map holds text as `{"$enc": "v1.…"}`, encrypted with the
 * token key (server/lib/crypto.ts). Pages and exports show MASK in their place, except to an
 * admin who asks to see them; a map saved with MASK in a place keeps what was stored there.
 *
 * The default map is the operator's, and every portal without a map of its own uses it: a
 * portal's admin never sees its credentials. A portal that saves its first own map from the
 * default (a rule turned off, say) keeps the default's sealed credentials marked
 * `$inherited`, and those stay masked for the portal too.
 */

/** What a page or an export shows instead of a stored credential. */
export const MASK = CREDENTIAL_MASK;

/** Headers whose values describe the payload, never a credential: shown and stored plain. */
const PLAIN_HEADERS = new Set([
  'accept',
  'accept-language',
  'content-language',
  'content-type',
  'user-agent',
]);

export const isPlainHeader = (name: string) => PLAIN_HEADERS.has(name.toLowerCase());

export { maskUrlText, urlHasCredentials };

export const isEnvRef = (v: unknown): v is { $env: string } =>
  typeof v === 'object' && v !== null && typeof (v as { $env?: unknown }).$env === 'string';
export const isSealed = (v: unknown): v is { $enc: string; $inherited?: true } =>
  typeof v === 'object' && v !== null && typeof (v as { $enc?: unknown }).$enc === 'string';

/** One credential field of one step. */
interface Place {
  /** `$.rules[0].actions[1].headers.Authorization` */
  path: string;
  /** Stable across edits: rule name, step name (or index), field. */
  key: string;
  kind: 'secret' | 'header' | 'url';
  /** The step the field belongs to. */
  step: HttpAction;
  /** The steps of its rule before it. */
  earlier: readonly Action[];
  get(): Secret | undefined;
  set(v: Secret): void;
}

/** The credential fields of every `http` step of a map (the map's objects, to change in place). */
function places(map: EventMap): Place[] {
  const out: Place[] = [];
  map.rules.forEach((rule, ri) => {
    rule.actions.forEach((action, ai) => {
      if (action.type !== 'http') return;
      const at = ['rules', ri, 'actions', ai];
      const base = `${rule.name}\n${action.name ?? `#${ai}`}\n`;
      const a = action as HttpAction;
      out.push({
        path: jsonPath([...at, 'url']),
        key: `${base}url`,
        kind: 'url',
        step: a,
        earlier: rule.actions.slice(0, ai),
        get: () => a.url,
        set: (v) => (a.url = v),
      });
      if (a.secret !== undefined) {
        out.push({
          path: jsonPath([...at, 'secret']),
          key: `${base}secret`,
          kind: 'secret',
          step: a,
          earlier: rule.actions.slice(0, ai),
          get: () => a.secret,
          set: (v) => (a.secret = v),
        });
      }
      for (const name of Object.keys(a.headers ?? {})) {
        if (isPlainHeader(name)) continue;
        out.push({
          path: jsonPath([...at, 'headers', name]),
          key: `${base}header:${name.toLowerCase()}`,
          kind: 'header',
          step: a,
          earlier: rule.actions.slice(0, ai),
          get: () => a.headers?.[name],
          set: (v) => (a.headers![name] = v),
        });
      }
    });
  });
  return out;
}

const copy = (map: EventMap): EventMap => structuredClone(map);

/** How a credential looks to someone who may not see it. */
function masked(kind: Place['kind'], v: Secret, box: SecretBox): Secret {
  if (isEnvRef(v)) return v;
  if (kind !== 'url') return MASK;
  const text = isSealed(v) ? box.decrypt(v.$enc) : v;
  return maskUrlText(text);
}

/** The map as pages and exports show it: every credential masked, `$env` names kept. */
export function maskMap(map: EventMap, box: SecretBox): EventMap {
  const out = copy(map);
  for (const p of places(out)) {
    const v = p.get();
    if (v !== undefined) p.set(masked(p.kind, v, box));
  }
  return out;
}

/**
 * The map with its credentials readable: the operator's `rules export --with-secrets`
 * (`operator`), or a portal admin's explicit reveal of the portal's own map, where what it
 * took over from the default map stays masked.
 */
export function revealMap(
  map: EventMap,
  box: SecretBox,
  opts: { operator?: boolean } = {},
): EventMap {
  const out = copy(map);
  for (const p of places(out)) {
    const v = p.get();
    if (!isSealed(v)) continue;
    p.set(v.$inherited && !opts.operator ? masked(p.kind, v, box) : box.decrypt(v.$enc));
  }
  return out;
}

/**
 * A portal's stored map with `$inherited` on every sealed credential that holds the same text
 * as the default map in the same place (rule, step, field): what a portal took over from the
 * default before saves marked it. Such a value stays masked for the portal.
 */
export function markInherited(map: EventMap, defaults: EventMap, box: SecretBox): EventMap {
  const open = (v: Secret | undefined) =>
    v === undefined || isEnvRef(v) ? undefined : isSealed(v) ? box.decrypt(v.$enc) : v;
  const theirs = new Map(places(copy(defaults)).map((p) => [p.key, open(p.get())]));
  const out = copy(map);
  for (const p of places(out)) {
    const v = p.get();
    if (!isSealed(v) || v.$inherited) continue;
    const t = theirs.get(p.key);
    if (t !== undefined && t === box.decrypt(v.$enc)) p.set({ ...v, $inherited: true });
  }
  return out;
}

export interface SealOptions {
  box: SecretBox;
  /** The map stored in the same scope: MASK in a place keeps its credential. */
  previous?: EventMap;
  /**
   * `previous` is the operator's default map, not this portal's own: a credential kept from
   * it is marked `$inherited` (never revealed to the portal).
   */
  previousIsDefault?: boolean;
  /** Variable names `{"$env": …}` may use (ACTION_SECRET_ENV). */
  envNames: { has(name: string): boolean };
}

export type SealResult = { ok: true; map: EventMap } | { ok: false; errors: MapError[] };

/**
 * The map as it is stored: text credentials encrypted, MASK replaced by what the previous
 * map held in the same place, `$env` names checked against ACTION_SECRET_ENV.
 */
export function sealMap(map: EventMap, opts: SealOptions): SealResult {
  const out = copy(map);
  const before = new Map<string, Place>();
  if (opts.previous) for (const p of places(copy(opts.previous))) before.set(p.key, p);
  const text = (v: Secret | undefined): string | undefined =>
    v === undefined
      ? undefined
      : isEnvRef(v)
        ? `$env:${v.$env}`
        : isSealed(v)
          ? opts.box.decrypt(v.$enc)
          : v;
  // Where a request to the URL goes, as the WHATWG parser the request uses reads it (a
  // regex read `https://evil.example\@erp.example/` as erp.example; fetch goes to evil).
  const destination = (v: Secret | undefined): string | undefined => {
    const t = text(v);
    if (t === undefined || t.startsWith('$env:')) return t;
    try {
      const u = new URL(t);
      return `${u.protocol}//${u.host}`;
    } catch {
      return `unparsed:${t}`;
    }
  };
  const errors: MapError[] = [];
  const all = places(out);
  for (const p of all) {
    const v = p.get();
    if (v === undefined) continue;
    if (isSealed(v)) continue;
    if (isEnvRef(v)) {
      if (!opts.envNames.has(v.$env)) {
        errors.push({
          path: p.path,
          message: `environment variable ${v.$env} is not listed in ACTION_SECRET_ENV (the operator lists the variables rules may use)`,
        });
      }
      continue;
    }
    if (v.includes(MASK)) {
      const prev = before.get(p.key)?.get();
      // A kept credential keeps its destination: a step whose URL now points elsewhere
      // (another origin) must be given the secret again, or a rule author who never saw it
      // could send it anywhere. One taken over from the operator's default map keeps its
      // whole request: the same URL and method, or a portal could use the operator's
      // token for any call to that host.
      const urlKey = p.key.replace(/[^\n]*$/, 'url');
      const beforeUrl = before.get(urlKey);
      const nowUrl = all.find((q) => q.key === urlKey);
      const inherited = opts.previousIsDefault === true || (isSealed(prev) && prev.$inherited);
      // An unnamed step is found only by its position, which a removed or moved step gives
      // to another: it keeps a credential only for the very request it was stored with.
      const byPosition = p.step.name === undefined;
      const sameDestination =
        p.kind === 'url' ||
        (inherited || byPosition
          ? text(beforeUrl?.get()) === text(nowUrl?.get()) &&
            beforeUrl?.step.method === nowUrl?.step.method
          : destination(beforeUrl?.get()) === destination(nowUrl?.get()));
      // Taken over from the default map, it keeps the operator's whole request: the same
      // body, headers and signing secret as well. A portal that kept the operator's token
      // and signing secret beside a body of its own sent the operator's system a request it
      // could not tell from the operator's (a review found "cancel every order" signed so).
      // A step that reads an earlier step's answer (`{{steps.…}}`) sends what that step
      // got: the earlier steps stay as they were too, or a portal could point one at its
      // own server and choose what the operator's system receives, signed.
      const sameRequest =
        !inherited ||
        (beforeUrl !== undefined &&
          nowUrl !== undefined &&
          wire(nowUrl.step, p.key, (k, v) =>
            typeof v === 'string' && v.includes(MASK) ? text(before.get(k)?.get()) : text(v),
          ) === wire(beforeUrl.step, p.key, (_k, v) => text(v)) &&
          (!JSON.stringify(nowUrl.step).includes('steps.') ||
            sameSteps(nowUrl.earlier, beforeUrl.earlier, opts.box)));
      const keep =
        prev !== undefined &&
        sameDestination &&
        sameRequest &&
        (p.kind === 'url'
          ? masked('url', prev, opts.box) === v
          : masked(p.kind, prev, opts.box) === MASK && v === MASK);
      if (keep) {
        // A credential kept from a map stored before credentials were sealed (an older
        // version, or another instance not yet restarted) is sealed now: kept in clear, a
        // portal's copy of the operator's token was stored readable and, unmarked, lost the
        // rule that keeps it to its own request.
        const held = isSealed(prev) ? prev : { $enc: opts.box.encrypt(text(prev)!) };
        p.set(opts.previousIsDefault ? { ...held, $inherited: true } : held);
      } else if (prev !== undefined && sameDestination && !sameRequest) {
        errors.push({
          path: p.path,
          message: `"${MASK}" keeps the default map's credential only for the request the default map sends, and this step's body, headers or signing secret differ from it; type the value or use {"$env": "NAME"}`,
        });
      } else {
        errors.push({
          path: p.path,
          message: `"${MASK}" stands for a stored secret, but none is stored here for this rule and step; type the value or use {"$env": "NAME"}`,
        });
      }
      continue;
    }
    if (p.kind === 'url' && !urlHasCredentials(v)) continue;
    p.set({ $enc: opts.box.encrypt(v) });
  }
  return errors.length ? { ok: false, errors } : { ok: true, map: out };
}

/**
 * What a step sends, as one comparable text: method, URL, every header (names in any case),
 * body (keys in any order) and signing secret, each credential field read by `field` (its
 * place key, its stored value). `placeKey` is any place key of the step.
 */
function wire(
  step: HttpAction,
  placeKey: string,
  field: (key: string, v: Secret | undefined) => string | undefined,
): string {
  const base = placeKey.replace(/[^\n]*$/, '');
  const headers = Object.entries(step.headers ?? {})
    .map(([name, v]): [string, string | undefined] => [
      name.toLowerCase(),
      isPlainHeader(name)
        ? typeof v === 'string'
          ? v
          : undefined
        : field(`${base}header:${name.toLowerCase()}`, v),
    ])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([
    step.method,
    field(`${base}url`, step.url),
    headers,
    canonical(step.body),
    field(`${base}secret`, step.secret),
  ]);
}

/** Two lists of steps alike but for their credentials' values (each masked), keys in any order. */
function sameSteps(a: readonly Action[], b: readonly Action[], box: SecretBox): boolean {
  const shown = (steps: readonly Action[]) =>
    JSON.stringify(
      canonical(maskMap({ rules: [{ name: '', on: [], actions: [...steps] }] }, box).rules[0]),
    );
  return a.length === b.length && shown(a) === shown(b);
}

/** JSON with every object's keys in order, so `{"a":1,"b":2}` and `{"b":2,"a":1}` compare equal. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
  );
}

/** One step as a map of its own, for `places` (the step itself: a caller that writes clones). */
const oneStep = (action: Action): EventMap => ({
  rules: [{ name: '', on: [], actions: [action] }],
});

/** A place's path within its step (`headers["X-Erp-Key"]`), for a message. */
const stepField = (p: Place): string => p.path.replace(/^\$\.rules\[0\]\.actions\[0\]\./, '');

/**
 * The texts of a step's credentials taken over from the operator's default map (`$inherited`),
 * as they go out: a header's value and the token after its scheme word (`Bearer x`), the
 * signing secret, a URL's password and key-like query values. Those written with templates
 * are left out (their values are the portal's own records). A succeeded step's answer is its
 * output, which the portal's later steps read: an endpoint of the operator's that echoes
 * its token must not hand it to the portal.
 */
export function inheritedTexts(action: Action, box: SecretBox): string[] {
  if (action.type !== 'http') return [];
  // Read only: the step itself, not a copy (this runs before every http step is recorded).
  const out = new Set<string>();
  for (const p of places(oneStep(action))) {
    const v = p.get();
    if (!isSealed(v) || !v.$inherited) continue;
    const t = box.decrypt(v.$enc);
    if (t.includes('{{')) continue;
    if (p.kind !== 'url') {
      out.add(t);
      const token = /^\S+\s+(\S+)$/.exec(t.trim())?.[1];
      if (token) out.add(token);
      continue;
    }
    try {
      const u = new URL(t);
      if (u.password) out.add(decodeURIComponent(u.password));
      for (const m of secretParams(u.search)) if (m[3]) out.add(decodeURIComponent(m[3]));
    } catch {
      // not a URL: nothing to look for
    }
  }
  return [...out].filter((x) => x.length >= 8).sort((a, b) => b.length - a.length);
}

/**
 * The step with its credentials as text, for sending: `$enc` decrypted, `$env` read from
 * `env` (ACTION_SECRET_ENV's variables). Throws naming the field when one cannot be read.
 */
export function openAction<A extends Action>(
  action: A,
  box: SecretBox,
  env: ReadonlyMap<string, string | undefined>,
): A {
  if (action.type !== 'http') return action;
  const holder = oneStep(structuredClone(action));
  for (const p of places(holder)) {
    const v = p.get();
    if (isSealed(v)) p.set(box.decrypt(v.$enc));
    else if (isEnvRef(v)) {
      const value = env.get(v.$env);
      if (value === undefined || value === '') {
        throw new SecretUnavailableError(
          `${stepField(p)}: environment variable ${v.$env} is ${env.has(v.$env) ? 'not set' : 'not listed in ACTION_SECRET_ENV'}`,
        );
      }
      p.set(value);
    }
  }
  return holder.rules[0]!.actions[0] as A;
}

/**
 * A step's `$env` credentials bound to an origin (ACTION_SECRET_ENV `NAME@https://erp.example`)
 * go to that origin only: `action` as stored (its `$env` references) against `rendered`, the
 * step about to be sent. Any portal's admin may name a listed variable, so without this a rule
 * could send the operator's ERP token to an address of its own. Throws naming the field.
 */
export function checkEnvOrigins(
  action: Action,
  rendered: Action,
  origins: ReadonlyMap<string, string>,
): void {
  if (action.type !== 'http' || rendered.type !== 'http' || origins.size === 0) return;
  let target: string | undefined;
  try {
    target = new URL(rendered.url as string).origin;
  } catch {
    target = undefined;
  }
  for (const p of places(oneStep(action))) {
    const v = p.get();
    const bound = isEnvRef(v) ? origins.get(v.$env) : undefined;
    if (bound === undefined || bound === target) continue;
    throw new SecretUnavailableError(
      `${stepField(p)}: environment variable ${(v as { $env: string }).$env} is sent only to ${bound} (ACTION_SECRET_ENV), not to ${target ?? 'this URL'}`,
    );
  }
}

/** A step's `$env` credential that cannot be read: the step fails for good (no retries). */
export class SecretUnavailableError extends PermanentError {
  constructor(message: string) {
    super(message);
    this.name = 'SecretUnavailableError';
  }
}
