import {
  dnsResolver,
  systemResolver,
  type HostAddress,
  type HostResolver,
} from './host-resolver.js';

/** One server mail for a domain is delivered to, with its addresses. */
export interface MailExchanger {
  host: string;
  addresses: HostAddress[];
}

/**
 * Where the operator's SMTP server would deliver mail for `domain`: every MX host (a relay
 * tries the later ones when the first refuse) or, with no MX record, the domain itself
 * (RFC 5321 5.1, the implicit MX), each with its addresses. An empty list: the domain takes
 * no mail (no such name, or a null MX, RFC 7505), so the relay delivers nowhere. Throws
 * TooManyExchangersError past MAX_EXCHANGERS, and DNS's error when it does not answer.
 */
export type MailRoutes = (domain: string) => Promise<MailExchanger[]>;

/** MX hosts a domain may list: a real one has a few; past this its route is not looked up. */
export const MAX_EXCHANGERS = 10;

export class TooManyExchangersError extends Error {
  constructor(domain: string, count: number) {
    super(`${domain} lists ${count} mail servers (MX), more than ${MAX_EXCHANGERS}`);
    this.name = 'TooManyExchangersError';
  }
}
/** How long a domain's route is kept. */
const ROUTE_TTL_MS = 5 * 60_000;
/** Domains kept at most (the oldest go first). */
const ROUTES_CAP = 1_000;

export interface MailRoutesOptions {
  /** Resolves the exchangers' names. @default systemResolver */
  resolve?: HostResolver;
  /** DNS servers asked for MX records (`host:port`); /etc/resolv.conf's when absent. */
  servers?: string[];
  timeoutMs?: number;
  tries?: number;
  now?: () => number;
}

const code = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code;

/** MailRoutes that can stop the lookups under way (a closing process, a test). */
export type CancellableMailRoutes = MailRoutes & { cancel(): void };

export function createMailRoutes(opts: MailRoutesOptions = {}): CancellableMailRoutes {
  const resolver = dnsResolver(opts);
  const resolve = opts.resolve ?? systemResolver;
  const now = opts.now ?? Date.now;
  const kept = new Map<string, { until: number; route: Promise<MailExchanger[]> }>();

  async function lookUp(domain: string): Promise<MailExchanger[]> {
    let hosts: string[];
    try {
      const mx = await resolver.resolveMx(domain);
      hosts = mx
        .sort((a, b) => a.priority - b.priority)
        .map((m) => m.exchange.replace(/\.$/, '').toLowerCase())
        // A null MX ("." , RFC 7505): the domain takes no mail.
        .filter((h) => h !== '');
      // No MX record at all: the domain's own address (RFC 5321 5.1).
      if (mx.length === 0) hosts = [domain];
    } catch (e) {
      if (code(e) === 'ENOTFOUND') return [];
      if (code(e) !== 'ENODATA') throw e;
      hosts = [domain];
    }
    hosts = [...new Set(hosts)];
    if (hosts.length > MAX_EXCHANGERS) throw new TooManyExchangersError(domain, hosts.length);
    // All at once: a step waits for the slowest name, not for their sum.
    const found = await Promise.all(
      hosts.map((host) =>
        resolve(host).then(
          (addresses) => ({ host, addresses }),
          (e: unknown) => {
            // An exchanger with no address is one the relay cannot reach either.
            if (code(e) === 'ENOTFOUND' || code(e) === 'ENODATA') return undefined;
            throw e;
          },
        ),
      ),
    );
    return found.filter((f): f is MailExchanger => f !== undefined);
  }

  const routes = (domain: string): Promise<MailExchanger[]> => {
    const name = domain.toLowerCase();
    const t = now();
    const hit = kept.get(name);
    if (hit && hit.until > t) return hit.route;
    const route = lookUp(name);
    kept.delete(name);
    kept.set(name, { until: t + ROUTE_TTL_MS, route });
    if (kept.size > ROUTES_CAP) kept.delete(kept.keys().next().value as string);
    // A lookup that failed is asked again next time.
    route.catch(() => {
      if (kept.get(name)?.route === route) kept.delete(name);
    });
    return route;
  };
  return Object.assign(routes, { cancel: () => resolver.cancel() });
}
