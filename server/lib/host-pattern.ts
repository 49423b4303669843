/**
 * Host patterns as used by `B24_PORTAL_HOSTS`: `*.bitrix24.com`, `crm.example.org`,
 * `127.0.0.1:*`. A pattern without a port matches only the host on its default port
 * (a bare host name, as Bitrix24 sends `DOMAIN`); `:*` matches any port.
 */
export interface HostPattern {
  readonly source: string;
  matches(hostWithPort: string): boolean;
}

export function parseHostPattern(source: string): HostPattern {
  const trimmed = source.trim().toLowerCase();
  if (!/^(\*\.)?[a-z0-9.-]+(:(\*|\d{1,5}))?$/.test(trimmed)) {
    throw new Error(`not a host pattern: "${source}" (expected host, *.domain or host:port)`);
  }
  const [hostPart = '', portPart] = trimmed.split(':');
  const wildcard = hostPart.startsWith('*.');
  const suffix = wildcard ? hostPart.slice(1) : hostPart; // ".bitrix24.com"
  return {
    source: trimmed,
    matches(hostWithPort) {
      const value = hostWithPort.trim().toLowerCase();
      const m = /^([a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(value);
      if (!m) return false;
      const host = m[1] ?? '';
      const port = m[2];
      const hostOk = wildcard
        ? host.endsWith(suffix) && host.length > suffix.length && !host.startsWith('.')
        : host === suffix;
      if (!hostOk) return false;
      if (portPart === '*') return true;
      if (portPart === undefined) return port === undefined;
      return port === portPart;
    },
  };
}

export function matchesAnyHost(patterns: readonly HostPattern[], host: string): boolean {
  return patterns.some((p) => p.matches(host));
}
