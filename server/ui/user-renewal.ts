import { randomBytes } from 'node:crypto';
import type { Deps } from '../deps.js';
import { InvalidGrantError } from '../bitrix/oauth.js';
import { RetryableError } from '../lib/retry-errors.js';
import {
  claimUserRenewal,
  dropUserRenewal,
  findUserRenewal,
  storeUserRenewal,
} from '../../db/stores/user-renewals.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { SESSION_TTL_MS } from './session.js';

type RenewDeps = Pick<Deps, 'bitrix' | 'box' | 'db' | 'logger'>;

/**
 * A user's refresh token is spent by its first use (Bitrix24 rotates the pair: b24restdocs
 * settings/oauth/auto-renewal.md, "new value of the additional authorization token"), and
 * more than one session holds the same one: Bitrix24 posts the same AUTH_ID and REFRESH_ID
 * into every frame of a user for the token's hour (the app page, a deal tab, a second
 * browser tab), two requests of one session may find the check due together, and behind a
 * load balancer they reach different instances. Only the first may refresh; any other that
 * renewed with the spent token would meet invalid_grant and demote an admin.
 *
 * So a renewal runs under a lease in the database (`user_token_renewals`, one row per spent
 * refresh token, on SQLite as on PostgreSQL): the instance that takes it refreshes and stores
 * the new pair in that row, encrypted with the token key; the others wait for it and read
 * it. Rows live as long as a session holding the spent token can (SESSION_TTL_MS, idle), and
 * a session asking with a spent token is given the newest pair of the chain. Within one
 * instance the renewal in flight and its pair are also kept in memory, so that requests
 * arriving together wait for one promise and a known pair costs no query. Each session's
 * answer is still checked against its own portal and user.
 */
const ROTATED_KEEP_MS = SESSION_TTL_MS;
const MAX_ROTATED = 10_000;
/** At most this many renewals of one pair are followed (a session idle for its 2 hours). */
const MAX_HOPS = 8;
/** How long a lease holds when its holder dies mid-renewal (the OAuth request times out at 30 s). */
const LEASE_MS = 45_000;
/** How often an instance waiting for another's renewal looks again. */
const LEASE_POLL_MS = 50;

interface RenewedPair {
  accessToken: string;
  refreshToken: string;
  /** Whom the OAuth server named (absent when it named nobody). */
  memberId: string | undefined;
  userId: number | undefined;
}

/** What one instance keeps: the renewals it made or read, per spent refresh token's digest. */
interface InstanceRenewals {
  rotations: Map<string, { at: number; pair: Promise<RenewedPair> }>;
  /** Names this instance's lease holders apart from other instances'. */
  id: string;
  seq: number;
}
/** Per instance: keyed by its REST client, which every part of one instance shares. */
const instances = new WeakMap<object, InstanceRenewals>();

function stateOf(deps: RenewDeps): InstanceRenewals {
  let s = instances.get(deps.bitrix);
  if (!s) {
    s = { rotations: new Map(), id: randomBytes(6).toString('hex'), seq: 0 };
    instances.set(deps.bitrix, s);
  }
  return s;
}

function keptRotation(
  { rotations }: InstanceRenewals,
  key: string,
  now: number,
): Promise<RenewedPair> | undefined {
  const known = rotations.get(key);
  return known && now - known.at < ROTATED_KEEP_MS && now >= known.at ? known.pair : undefined;
}

function keep(
  { rotations }: InstanceRenewals,
  key: string,
  now: number,
  pair: Promise<RenewedPair>,
): void {
  rotations.set(key, { at: now, pair });
  // A failed renewal is not kept: the next request asks again (an invalid_grant ends the
  // proof anyway).
  pair.catch(() => {
    if (rotations.get(key)?.pair === pair) rotations.delete(key);
  });
  for (const [k, v] of rotations) {
    if (rotations.size <= MAX_ROTATED && now - v.at < ROTATED_KEEP_MS) break;
    rotations.delete(k);
  }
}

function sealPair(deps: RenewDeps, pair: RenewedPair): string {
  return deps.box.encrypt(JSON.stringify(pair));
}

function openPair(deps: RenewDeps, sealed: string): RenewedPair {
  const p = JSON.parse(deps.box.decrypt(sealed)) as Partial<RenewedPair>;
  if (typeof p.accessToken !== 'string' || typeof p.refreshToken !== 'string') {
    throw new Error('a stored renewal holds no token pair');
  }
  return {
    accessToken: p.accessToken,
    refreshToken: p.refreshToken,
    memberId: typeof p.memberId === 'string' ? p.memberId : undefined,
    userId: typeof p.userId === 'number' ? p.userId : undefined,
  };
}

/**
 * The renewal of `refreshToken`, made here under the lease or read from the instance that
 * made it. `now`: the app's clock (rows kept by it); the lease runs on the wall clock, which
 * the instances share.
 */
async function renewOnce(
  deps: RenewDeps,
  portal: PortalRow,
  refreshToken: string,
  key: string,
  now: number,
): Promise<RenewedPair> {
  const state = stateOf(deps);
  const holder = `${state.id}-${++state.seq}`;
  const deadline = Date.now() + 2 * LEASE_MS;
  for (;;) {
    const claim = await claimUserRenewal(deps.db, {
      spent: key,
      memberId: portal.member_id,
      holder,
      nowMs: Date.now(),
      leaseUntil: Date.now() + LEASE_MS,
      createdAt: now,
      keepSince: now - ROTATED_KEEP_MS,
    });
    if (claim.kind === 'renewed') return openPair(deps, claim.pairEnc);
    if (claim.kind === 'mine') break;
    if (Date.now() > deadline) {
      throw new RetryableError('another instance is still renewing the user’s token pair');
    }
    await new Promise((res) => setTimeout(res, LEASE_POLL_MS));
  }
  let pair: RenewedPair;
  try {
    // The OAuth server the app already refreshes the portal's tokens with, with the app's
    // client id and secret (grant_type=refresh_token: b24restdocs settings/oauth/
    // auto-renewal.md); the secret goes only to B24_OAUTH_SERVERS (oauth.ts).
    const a = await deps.bitrix.exchangeRefreshToken(portal.server_endpoint ?? '', refreshToken);
    pair = {
      accessToken: a.access_token,
      refreshToken: a.refresh_token,
      memberId: a.member_id,
      userId: a.user_id === undefined ? undefined : Number(a.user_id),
    };
  } catch (e) {
    await dropUserRenewal(deps.db, key, holder);
    // Spent meanwhile by an instance whose lease we outlived: its pair, if it left one.
    if (e instanceof InvalidGrantError) {
      const stored = await findUserRenewal(deps.db, key);
      if (stored !== undefined) return openPair(deps, stored);
    }
    throw e;
  }
  try {
    // Kept before anyone uses it: the old refresh token is spent now.
    await storeUserRenewal(deps.db, key, holder, sealPair(deps, pair));
  } catch (e) {
    // This session has the pair; the others will meet invalid_grant, as before sharing.
    deps.logger.warn(
      { memberId: portal.member_id, err: e },
      'a renewed user token pair could not be kept for the other instances',
    );
  }
  return pair;
}

/** The pair that replaced `refreshToken`, if any instance renewed it and kept the pair. */
async function renewedSince(
  deps: RenewDeps,
  refreshToken: string,
  now: number,
): Promise<RenewedPair | undefined> {
  const key = deps.box.digest(refreshToken);
  const state = stateOf(deps);
  const kept = keptRotation(state, key, now);
  if (kept) return kept;
  const stored = await findUserRenewal(deps.db, key);
  if (stored === undefined) return undefined;
  const pair = openPair(deps, stored);
  keep(state, key, now, Promise.resolve(pair));
  return pair;
}

/**
 * A new pair for the session holding `refreshToken`: renewed once for every session and
 * instance holding it, then the newest renewal of that chain. Throws InvalidGrantError when
 * the user's authorization is over, or the pair names another portal or user.
 */
export async function sharedRefresh(
  deps: RenewDeps,
  portal: PortalRow,
  refreshToken: string,
  userId: number,
  now: number,
): Promise<{ accessToken: string; refreshToken: string }> {
  const key = deps.box.digest(refreshToken);
  const state = stateOf(deps);
  let renewed = keptRotation(state, key, now);
  if (!renewed) {
    renewed = renewOnce(deps, portal, refreshToken, key, now);
    keep(state, key, now, renewed);
  }
  let pair = await renewed;
  // Renewed again since (by a session holding the newer pair): the newest one.
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    let next: RenewedPair | undefined;
    try {
      next = await renewedSince(deps, pair.refreshToken, now);
    } catch {
      // That renewal failed, or cannot be read: the pair before it is the newest known.
      break;
    }
    if (!next) break;
    pair = next;
  }
  // A pair of another portal or user (the answer names both) proves nothing for this one.
  if (
    (pair.memberId !== undefined && pair.memberId !== portal.member_id) ||
    (pair.userId !== undefined && pair.userId !== userId)
  ) {
    throw new InvalidGrantError();
  }
  return { accessToken: pair.accessToken, refreshToken: pair.refreshToken };
}
