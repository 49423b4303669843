import net from 'node:net';
import ipaddr from 'ipaddr.js';
import proxyaddr from 'proxy-addr';
import type http from 'node:http';
import type { Logger } from '../lib/logger.js';

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * Bitrix24's published sender lists: `{"nodes": [...]}`
 * (https://apidocs.bitrix24.com/settings/cloud-and-on-premise/network-access.html).
 */
export const BITRIX24_IP_LIST_URLS = [
  'https://dl.bitrix24.com/webhook/app-world.json',
  'https://repos.1c-bitrix.ru/webhook/app.json',
];

function parseRange(entry: string): Range | undefined {
  try {
    if (entry.includes('/')) return ipaddr.parseCIDR(entry);
    const addr = ipaddr.parse(entry);
    return [addr, addr.kind() === 'ipv4' ? 32 : 128];
  } catch {
    return undefined;
  }
}

function normalise(addr: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    const a = ipaddr.parse(addr);
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress())
      return (a as ipaddr.IPv6).toIPv4Address();
    return a;
  } catch {
    return undefined;
  }
}

export interface IpAllowlist {
  /** False when the list is off. */
  readonly enabled: boolean;
  allows(address: string | undefined): boolean;
  /** Fetches Bitrix24's lists now (when `bitrix24` is configured); keeps the last good list on failure. */
  refresh(): Promise<void>;
  /**
   * Starts the refreshes; settles once the list kept from the last start is loaded (the
   * server listens after it: before, every address was admitted for that moment).
   */
  start(): Promise<void>;
  stop(): void;
}

/** Where the last good published list is kept between starts (the database's settings). */
export interface PublishedListStore {
  load(): Promise<string[] | undefined>;
  save(nodes: string[]): Promise<void>;
}

/**
 * `B24_IP_ALLOWLIST`: CIDRs, and/or the word `bitrix24` to follow the sender address lists
 * Bitrix24 publishes (refreshed every `refreshMs`; a failed refresh keeps the last good list,
 * which `store` keeps across starts). Until a list is known at all (the first start of a
 * server that cannot reach Bitrix24's list, through a firewall or a proxy fetch does not
 * use), `bitrix24` admits every address, with a warning at each failed refresh: Bitrix24
 * never sends an event again, and every delivery still has to carry the portal's
 * application token.
 */
export function createIpAllowlist(opts: {
  entries: readonly string[];
  listUrls?: readonly string[];
  refreshMs?: number;
  logger: Logger;
  fetchImpl?: typeof fetch;
  store?: PublishedListStore;
}): IpAllowlist {
  const fixed: Range[] = [];
  let followBitrix = false;
  for (const e of opts.entries) {
    if (e.toLowerCase() === 'bitrix24') followBitrix = true;
    else {
      const r = parseRange(e);
      if (r) fixed.push(r);
    }
  }
  /** Bitrix24's published ranges; undefined until a list was fetched or loaded. */
  let published: Range[] | undefined;
  let timer: NodeJS.Timeout | undefined;
  const urls = opts.listUrls ?? BITRIX24_IP_LIST_URLS;
  const doFetch = opts.fetchImpl ?? fetch;

  /** The list kept from the last start, once (a fetched one, when there is one, wins). */
  let loading: Promise<void> | undefined;
  const loadKept = () =>
    (loading ??= (async () => {
      const kept = opts.store ? await opts.store.load().catch(() => undefined) : undefined;
      const ranges = (kept ?? []).map(parseRange).filter((r): r is Range => r !== undefined);
      if (published === undefined && ranges.length > 0) published = ranges;
    })());

  const matches = (addr: ipaddr.IPv4 | ipaddr.IPv6, ranges: Range[]) =>
    ranges.some(([net, bits]) => addr.kind() === net.kind() && addr.match(net, bits));

  const list: IpAllowlist = {
    enabled: opts.entries.length > 0,
    allows(address) {
      if (!list.enabled) return true;
      const addr = address ? normalise(address) : undefined;
      if (!addr) return false;
      return (
        matches(addr, fixed) ||
        (followBitrix && (published === undefined || matches(addr, published)))
      );
    },
    async refresh() {
      if (!followBitrix) return;
      await loadKept();
      const next: Range[] = [];
      const nodes: string[] = [];
      for (const url of urls) {
        try {
          const res = await doFetch(url, { signal: AbortSignal.timeout(10_000) });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const body = (await res.json()) as { nodes?: unknown };
          if (!Array.isArray(body.nodes)) throw new Error('no "nodes" array');
          for (const n of body.nodes) {
            const r = typeof n === 'string' ? parseRange(n) : undefined;
            if (r) {
              next.push(r);
              nodes.push(n as string);
            }
          }
        } catch (e) {
          if (published === undefined) {
            opts.logger.warn(
              { url, err: (e as Error).message },
              "B24_IP_ALLOWLIST=bitrix24: Bitrix24's sender address list could not be fetched and none was fetched before, so deliveries are taken from any address until it is (each still needs its portal's application token); allow the server to reach the list, or set B24_IP_LIST_URLS or CIDRs",
            );
          } else {
            opts.logger.warn(
              { url, err: (e as Error).message },
              'Bitrix24 IP list refresh failed; keeping the last good list',
            );
          }
          return;
        }
      }
      if (next.length > 0) {
        published = next;
        await opts.store
          ?.save(nodes)
          .catch((e: unknown) =>
            opts.logger.warn(
              { err: (e as Error).message },
              'Bitrix24 IP list not kept for the next start',
            ),
          );
      }
    },
    async start() {
      if (!followBitrix || timer) return;
      timer = setInterval(() => void list.refresh(), opts.refreshMs ?? 5 * 60_000);
      timer.unref();
      await loadKept();
      void list.refresh();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
  return list;
}

/** The client address as `TRUST_PROXY` says to read it (the same rules Express uses). */
export function clientAddress(
  req: http.IncomingMessage,
  trust: boolean | number | string,
): string | undefined {
  const socketAddr = req.socket.remoteAddress;
  if (trust === false) return socketAddr;
  if (trust === true) {
    const xff = req.headers['x-forwarded-for'];
    const first = (Array.isArray(xff) ? xff[0] : xff)?.split(',')[0]?.trim();
    // Only an address: anything else in the header is a sender's text, not where it came from.
    return first && net.isIP(first) ? first : socketAddr;
  }
  const fn =
    typeof trust === 'number'
      ? (_a: string, i: number) => i < trust
      : proxyaddr.compile(trust.split(',').map((s) => s.trim()));
  return proxyaddr(req, fn);
}
