import ipaddr from 'ipaddr.js';

/**
 * Which addresses rule steps may connect to: public unicast addresses, plus what
 * the operator lists in `ACTION_PRIVATE_HOSTS`. Used by server/lib/http-guard.ts on the
 * address of every connection a step opens.
 */

/** `ACTION_PRIVATE_HOSTS` parsed: host names (lower case) and address ranges. */
export interface PrivateHosts {
  readonly hosts: readonly string[];
  readonly ranges: readonly string[];
}

/** Parses the entries of `ACTION_PRIVATE_HOSTS`; throws with the entry that is neither. */
export function parsePrivateHosts(entries: readonly string[]): PrivateHosts {
  const hosts: string[] = [];
  const ranges: string[] = [];
  for (const raw of entries) {
    const e = raw
      .trim()
      .toLowerCase()
      .replace(/^\[|\]$/g, '');
    if (e === '') continue;
    if (ipaddr.isValid(e)) {
      const a = ipaddr.process(e);
      ranges.push(`${a.toString()}/${a.kind() === 'ipv4' ? 32 : 128}`);
    } else if (e.includes('/')) {
      try {
        const [a, bits] = ipaddr.parseCIDR(e);
        ranges.push(`${a.toString()}/${bits}`);
      } catch {
        throw new Error(`"${raw}" is not a CIDR (e.g. 10.0.0.0/8) nor a host name`);
      }
    } else if (/^[\d.]+$/.test(e)) {
      // All digits and dots is meant as an IPv4 address (300.1.1.1): no host is named so.
      throw new Error(`"${raw}" is not a valid IPv4 address`);
    } else if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/.test(e)) {
      hosts.push(e.replace(/\.$/, ''));
    } else throw new Error(`"${raw}" is not a host name, an IP address or a CIDR`);
  }
  return { hosts, ranges };
}

/** Names ipaddr.js gives ranges, as the refusal message says them. */
const RANGE_NAMES: Record<string, string> = {
  loopback: 'a loopback address',
  private: 'a private address',
  carrierGradeNat: 'a carrier-grade NAT address',
  uniqueLocal: 'a unique-local address',
  linkLocal: 'a link-local address',
  multicast: 'a multicast address',
  unspecified: 'an unspecified address',
  broadcast: 'the broadcast address',
  reserved: 'a reserved address',
};

/**
 * Public-looking addresses that are a cloud host's own: Azure's WireServer 168.63.129.16
 * answers every VM on it (the VM agent's channel, with no credentials asked), and Alibaba
 * Cloud's metadata service is 100.100.100.200 (carrier-grade NAT, refused already).
 */
const IPV4_COMPATIBLE = ipaddr.IPv6.parse('::');

const CLOUD_INTERNAL: ReadonlyArray<[ipaddr.IPv4, number, string]> = [
  [ipaddr.IPv4.parse('168.63.129.16'), 32, "a cloud host's internal address (Azure WireServer)"],
];

export interface AddressPolicy {
  /** The host is named in `ACTION_PRIVATE_HOSTS`: any address it resolves to is allowed. */
  hostAllowed(host: string): boolean;
  /** Why a step may not connect to `address`, or undefined when it may. */
  refuse(address: string): string | undefined;
  /**
   * The same without the address ("a private address"): what a refusal of a host *name*
   * says, since the address a name resolves to inside our network is not the tenant's to
   * learn (the operator can look the name up).
   */
  refusedKind(address: string): string | undefined;
}

/**
 * The policy: a host named in `ACTION_PRIVATE_HOSTS`, or an address in one of its ranges,
 * is allowed; otherwise only public unicast addresses are (ipaddr.js range `unicast` after
 * unwrapping IPv4-mapped IPv6). Everything else — loopback, RFC 1918, CGNAT 100.64/10,
 * fc00::/7, link-local and metadata, multicast, unspecified, reserved, the IPv6 forms
 * that embed an IPv4 address (NAT64, 6to4, Teredo) and Azure's WireServer — is refused.
 */
export function addressPolicy(allowed: PrivateHosts): AddressPolicy {
  const ranges = allowed.ranges.map((r) => ipaddr.parseCIDR(r));
  const hosts = new Set(allowed.hosts);
  const hostAllowed = (host: string) => hosts.has(host.toLowerCase().replace(/\.$/, ''));
  const classify = (address: string): { shown: string; kind: string } | undefined => {
    let a: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      a = ipaddr.process(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
    } catch {
      return { shown: address, kind: 'not an IP address' };
    }
    if (ranges.some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits))) {
      return undefined;
    }
    const range = a.range();
    if (range === 'unicast') {
      // ::a.b.c.d, the deprecated IPv4-compatible form (RFC 4291 2.5.5.1), which ipaddr.js
      // calls unicast (:: and ::1 have ranges of their own): an IPv4 address inside.
      if (a.kind() === 'ipv6' && a.match(IPV4_COMPATIBLE, 96)) {
        return { shown: a.toString(), kind: 'an IPv4-compatible IPv6 address' };
      }
      const cloud = CLOUD_INTERNAL.find(([net, bits]) => a.kind() === 'ipv4' && a.match(net, bits));
      return cloud ? { shown: a.toString(), kind: cloud[2] } : undefined;
    }
    return { shown: a.toString(), kind: RANGE_NAMES[range] ?? `not a public address (${range})` };
  };
  const refuse = (address: string): string | undefined => {
    const c = classify(address);
    return c && `${c.shown} is ${c.kind}`;
  };
  const refusedKind = (address: string): string | undefined => classify(address)?.kind;
  return { hostAllowed, refuse, refusedKind };
}
