import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';

/** One address of a host name, as `dns.lookup(…, { all: true })` gives it. */
export interface HostAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every address it has. */
export type HostResolver = (host: string) => Promise<HostAddress[]>;

export interface HostResolverOptions {
  /** DNS servers asked (`host:port`); those of /etc/resolv.conf when absent. */
  servers?: string[];
  /** How long DNS is given on the first try, in ms (c-ares doubles it on the next). */
  timeoutMs?: number;
  /** Tries per DNS server. */
  tries?: number;
  /** The system's resolution (getaddrinfo: /etc/hosts, search domains, NSS). */
  fallback?: (host: string) => Promise<HostAddress[]>;
  /**
   * System resolutions in flight at most for names DNS said it has no address for; each one
   * holds a libuv threadpool thread.
   */
  lanes?: number;
  /** The same for names DNS did not answer at all (a server that drops queries). */
  silentLanes?: number;
  /** The hosts file read before DNS, as the system does (`files dns`). @default /etc/hosts */
  hostsFile?: string;
  /** How long a name waits for a free lane before its lookup fails. */
  laneWaitMs?: number;
  /** How long a lookup waits for the system's answer, its wait for a lane included. */
  systemWaitMs?: number;
  now?: () => number;
}

/** What the resolver has done, for tests and the operator. */
export interface HostResolverStats {
  /** System resolutions running now (each holds a threadpool thread). */
  inFlight: number;
  /** Names waiting for a lane. */
  waiting: number;
  /** Names remembered as resolved only by the system. */
  remembered: number;
}

export type StatefulHostResolver = HostResolver & { stats(): HostResolverStats };

export const DNS_TIMEOUT_MS = 2_000;
export const DNS_TRIES = 2;
/**
 * Of the pool's 4 threads, lookups may hold at most 3: 2 for names DNS says it does not know
 * (names of /etc/hosts' kind, search-domain names), 1 for names DNS does not answer. A
 * portal's names whose servers drop queries fill the one, not the two: other portals'
 * internal names still resolve. File reads and crypto keep the fourth.
 */
export const LOOKUP_LANES = 2;
export const SILENT_LANES = 1;
/** How often the hosts file is read again at most. */
const HOSTS_REREAD_MS = 30_000;
export const LANE_WAIT_MS = 5_000;
/** glibc gives each server 5 s a try; a name it has not answered by then is not waited for. */
export const SYSTEM_WAIT_MS = 10_000;
/** Names waiting for a lane at most; more fail at once. */
const WAITING_CAP = 200;
/** How long a name DNS could not answer but the system could goes straight to the system. */
const REMEMBER_MS = 10 * 60_000;
const REMEMBERED_CAP = 1_000;

const systemLookup = (host: string): Promise<HostAddress[]> =>
  dns.promises.lookup(host, { all: true, verbatim: false });

function failure(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * Resolves the host names of rule steps and portals (server/README.md#threat-model).
 *
 * Node's own `dns.lookup` is getaddrinfo run on the libuv threadpool, 4 threads shared with file
 * reads and crypto. A rule author chooses the host of an `http` step; names whose name servers
 * never answer (any domain its owner points at a server that drops queries) keep a thread each
 * for glibc's whole timeout, 5 s per try and server, so a handful of them held every thread,
 * and every other portal's lookups — its http steps, its REST calls — waited behind them.
 *
 * Here the hosts file is read first, as the system does; then DNS is asked by c-ares, on the
 * main thread's event loop, A and AAAA at once, with a bounded timeout: a name that hangs costs
 * a pending query and nothing else. Only when DNS gave no address (a single-label name found
 * through the search domains, another NSS source, a machine with no DNS server) is the system
 * asked, one call per name, at most LOOKUP_LANES at a time for names DNS said it does not know
 * and SILENT_LANES for names DNS did not answer, each waiting at most LANE_WAIT_MS for its turn
 * and SYSTEM_WAIT_MS in all; a name the system answered goes straight to it for REMEMBER_MS.
 */
/** A c-ares resolver (off libuv's threadpool) with these servers and patience. */
export function dnsResolver(
  opts: Pick<HostResolverOptions, 'servers' | 'timeoutMs' | 'tries'>,
): dns.promises.Resolver {
  const resolver = new dns.promises.Resolver({
    timeout: opts.timeoutMs ?? DNS_TIMEOUT_MS,
    tries: opts.tries ?? DNS_TRIES,
  });
  if (opts.servers) resolver.setServers(opts.servers);
  return resolver;
}

export function createHostResolver(opts: HostResolverOptions = {}): StatefulHostResolver {
  const resolver = dnsResolver(opts);
  const fallback = opts.fallback ?? systemLookup;
  const pools = {
    known: { size: opts.lanes ?? LOOKUP_LANES, inFlight: 0, waiting: [] as Array<() => void> },
    silent: {
      size: opts.silentLanes ?? SILENT_LANES,
      inFlight: 0,
      waiting: [] as Array<() => void>,
    },
  };
  const hosts = hostsReader(opts.hostsFile ?? '/etc/hosts', opts.now ?? Date.now);
  const laneWaitMs = opts.laneWaitMs ?? LANE_WAIT_MS;
  const systemWaitMs = opts.systemWaitMs ?? SYSTEM_WAIT_MS;
  const now = opts.now ?? Date.now;
  const remembered = new Map<string, number>();
  const pending = new Map<string, Promise<HostAddress[]>>();

  async function askDns(host: string): Promise<HostAddress[]> {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
    const found: HostAddress[] = [];
    if (v4.status === 'fulfilled')
      for (const address of v4.value) found.push({ address, family: 4 });
    if (v6.status === 'fulfilled')
      for (const address of v6.value) found.push({ address, family: 6 });
    if (found.length > 0) return found;
    throw v4.status === 'rejected' ? v4.reason : failure('ENODATA', `${host} has no address`);
  }

  type Pool = (typeof pools)['known'];
  function takeLane(host: string, pool: Pool): Promise<() => void> {
    const { waiting } = pool;
    const release = () => {
      pool.inFlight--;
      waiting.shift()?.();
    };
    if (pool.inFlight < pool.size) {
      pool.inFlight++;
      return Promise.resolve(release);
    }
    if (waiting.length >= WAITING_CAP) {
      return Promise.reject(
        failure('ETIMEOUT', `${host}: too many host names are being looked up`),
      );
    }
    return new Promise((resolve, reject) => {
      const turn = () => {
        clearTimeout(timer);
        pool.inFlight++;
        resolve(release);
      };
      const timer = setTimeout(() => {
        const at = waiting.indexOf(turn);
        if (at !== -1) waiting.splice(at, 1);
        reject(failure('ETIMEOUT', `${host}: DNS did not answer and the system lookups are busy`));
      }, laneWaitMs);
      timer.unref();
      waiting.push(turn);
    });
  }

  /** The system's answer; the call goes on holding its lane after the caller stops waiting. */
  function askSystem(host: string, pool: Pool = pools.known): Promise<HostAddress[]> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(failure('ETIMEOUT', `${host}: the system lookup did not answer`)),
        systemWaitMs,
      );
      timer.unref();
    });
    return Promise.race([systemAnswer(host, pool), late]).finally(() => clearTimeout(timer));
  }

  function systemAnswer(host: string, pool: Pool): Promise<HostAddress[]> {
    const same = pending.get(host);
    if (same) return same;
    const asked = takeLane(host, pool)
      .then(async (release) => {
        try {
          return await fallback(host);
        } finally {
          release();
        }
      })
      .finally(() => pending.delete(host));
    pending.set(host, asked);
    return asked;
  }

  function remember(host: string): void {
    remembered.delete(host);
    remembered.set(host, now() + REMEMBER_MS);
    if (remembered.size > REMEMBERED_CAP) {
      remembered.delete(remembered.keys().next().value as string);
    }
  }

  const resolve = async (host: string): Promise<HostAddress[]> => {
    // The hosts file first, as the system reads it: an operator's pinned name stays pinned.
    const pinned = hosts(host);
    if (pinned) return pinned;
    // RFC 6761: localhost names are not DNS's to answer.
    if (host === 'localhost' || host.endsWith('.localhost')) return askSystem(host);
    const until = remembered.get(host);
    if (until !== undefined) {
      if (until > now()) return askSystem(host);
      remembered.delete(host);
    }
    try {
      return await askDns(host);
    } catch (dnsError) {
      const code = (dnsError as NodeJS.ErrnoException).code;
      // DNS said it has no such name or address: the system may (search domains, NSS).
      // DNS did not answer: the system would ask the same silent server, in its one lane.
      const pool = code === 'ENOTFOUND' || code === 'ENODATA' ? pools.known : pools.silent;
      const found = await askSystem(host, pool).catch((e: NodeJS.ErrnoException) => {
        // The system's word when it has one ("not found"); else why DNS failed.
        throw e.code === 'ETIMEOUT' || !e.code ? dnsError : e;
      });
      if (found.length === 0) throw failure('ENOTFOUND', `${host} has no address`);
      remember(host);
      return found;
    }
  };
  return Object.assign(resolve, {
    stats: (): HostResolverStats => ({
      inFlight: pools.known.inFlight + pools.silent.inFlight,
      waiting: pools.known.waiting.length + pools.silent.waiting.length,
      remembered: remembered.size,
    }),
  });
}

/**
 * The addresses a hosts file gives a name (`address name alias…` lines, `#` comments), IPv4
 * first; read again at most every HOSTS_REREAD_MS. A file that cannot be read gives none.
 */
function hostsReader(file: string, now: () => number): (host: string) => HostAddress[] | undefined {
  let readAt = -Infinity;
  let names = new Map<string, HostAddress[]>();
  const read = () => {
    const next = new Map<string, HostAddress[]>();
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      // no hosts file: DNS alone
    }
    for (const line of text.split('\n')) {
      const [address, ...aliases] = line.replace(/#.*/, '').trim().split(/\s+/);
      const family = address ? net.isIP(address.replace(/%.*$/, '')) : 0;
      if (!address || !family) continue;
      for (const alias of aliases) {
        const name = alias.toLowerCase();
        const list = next.get(name) ?? [];
        if (!list.some((a) => a.address === address)) list.push({ address, family });
        next.set(name, list);
      }
    }
    for (const list of next.values()) list.sort((a, b) => a.family - b.family);
    names = next;
  };
  return (host) => {
    if (now() - readAt >= HOSTS_REREAD_MS) {
      readAt = now();
      read();
    }
    return names.get(host.toLowerCase().replace(/\.$/, ''));
  };
}

/** The resolver of the running app. */
export const systemResolver: StatefulHostResolver = createHostResolver();
