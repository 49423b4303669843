import dns from 'node:dns';

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
  /** System resolutions in flight at most; each one holds a libuv threadpool thread. */
  lanes?: number;
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
/** Of the pool's 4 threads, lookups may hold at most 2: file reads and crypto keep the others. */
export const LOOKUP_LANES = 2;
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
 * Here DNS is asked by c-ares, on the main thread's event loop, A and AAAA at once, with a
 * bounded timeout: a name that hangs costs a pending query and nothing else. Only when DNS gave
 * no address (a name of /etc/hosts, a single-label name resolved through the search domains, a
 * machine with no DNS server) is the system asked, through at most LOOKUP_LANES calls at a
 * time, one per name, each waiting at most LANE_WAIT_MS for its turn and SYSTEM_WAIT_MS in
 * all; a name the system answered goes straight to it for REMEMBER_MS.
 */
export function createHostResolver(opts: HostResolverOptions = {}): StatefulHostResolver {
  const resolver = new dns.promises.Resolver({
    timeout: opts.timeoutMs ?? DNS_TIMEOUT_MS,
    tries: opts.tries ?? DNS_TRIES,
  });
  if (opts.servers) resolver.setServers(opts.servers);
  const fallback = opts.fallback ?? systemLookup;
  const lanes = opts.lanes ?? LOOKUP_LANES;
  const laneWaitMs = opts.laneWaitMs ?? LANE_WAIT_MS;
  const systemWaitMs = opts.systemWaitMs ?? SYSTEM_WAIT_MS;
  const now = opts.now ?? Date.now;
  const remembered = new Map<string, number>();
  const pending = new Map<string, Promise<HostAddress[]>>();
  const waiting: Array<() => void> = [];
  let inFlight = 0;

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

  function takeLane(host: string): Promise<() => void> {
    const release = () => {
      inFlight--;
      waiting.shift()?.();
    };
    if (inFlight < lanes) {
      inFlight++;
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
        inFlight++;
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
  function askSystem(host: string): Promise<HostAddress[]> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(failure('ETIMEOUT', `${host}: the system lookup did not answer`)),
        systemWaitMs,
      );
      timer.unref();
    });
    return Promise.race([systemAnswer(host), late]).finally(() => clearTimeout(timer));
  }

  function systemAnswer(host: string): Promise<HostAddress[]> {
    const same = pending.get(host);
    if (same) return same;
    const asked = takeLane(host)
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
      const found = await askSystem(host).catch((e: NodeJS.ErrnoException) => {
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
      inFlight,
      waiting: waiting.length,
      remembered: remembered.size,
    }),
  });
}

/** The resolver of the running app. */
export const systemResolver: StatefulHostResolver = createHostResolver();
