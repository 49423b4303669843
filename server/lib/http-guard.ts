import net from 'node:net';
import type { LookupFunction } from 'node:net';
import { addressPolicy, type PrivateHosts } from './address-policy.js';
import { systemResolver, type HostResolver } from './host-resolver.js';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';

/**
 * Where rule steps may connect (server/rules/README.md#private-addresses). A rule author writes the
 * URL of an `http` step, so without this a step could reach the app's own network: loopback, the
 * cloud metadata service at 169.254.169.254, private ranges. Every connection of a rule step goes
 * through one undici dispatcher whose connector checks the address it is about to connect to — an
 * IP in the URL as it is, a host name through the lookup that `net.connect` uses for that very
 * connection, so a name that resolves to a public address when checked and a private one when
 * connected (DNS rebinding) has no second resolution to exploit — and then checks the peer
 * address of the connected socket once more. Redirects are followed by hand (callHttp), each
 * hop a new request through the same dispatcher.
 *
 * Why undici and not `request-filtering-agent`: that library filters node:http Agents; our
 * HTTP client is fetch, which takes an undici dispatcher, and undici's `connect` options
 * accept the same `lookup` hook. ipaddr.js (already used for B24_IP_ALLOWLIST) classifies
 * addresses, IPv4-mapped IPv6 included.
 */

export type { HostResolver };

/** A connection the policy refused; callHttp turns it into a PermanentError. */
export class AddressRefusedError extends Error {
  readonly code = 'E_ADDRESS_REFUSED';
  constructor(reason: string) {
    super(`${reason} (not in ACTION_PRIVATE_HOSTS)`);
    this.name = 'AddressRefusedError';
  }
}

/** What callHttp needs to send a rule step's request. */
export interface HttpGuard {
  fetch: typeof fetch;
  /** The undici dispatcher every request of a rule step goes through. */
  dispatcher: Agent;
  /** Redirect hops followed at most. */
  maxRedirects: number;
  close(): Promise<void>;
}

export const MAX_REDIRECTS = 3;

/** A dispatcher whose connections only reach what the address policy allows. */
export function createHttpGuard(
  allowed: PrivateHosts,
  resolve: HostResolver = systemResolver,
): HttpGuard {
  const policy = addressPolicy(allowed);
  /** `net.connect`'s lookup through `resolve`; with `filter`, refusing private addresses. */
  const lookupWith =
    (filter: boolean): LookupFunction =>
    (hostname, options, callback) => {
      resolve(hostname).then(
        (found) => {
          const refused = filter
            ? found.map((f) => policy.refusedKind(f.address)).find((r) => r !== undefined)
            : undefined;
          if (found.length === 0) {
            callback(
              Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }),
              '',
              4,
            );
          } else if (refused) {
            // A name with any refused address is refused whole: the connection could use it.
            callback(new AddressRefusedError(`${hostname} resolves to ${refused}`), '', 4);
          } else if (options.all) {
            (callback as unknown as (e: null, a: typeof found) => void)(null, found);
          } else {
            const first = found.find((f) => !options.family || f.family === options.family);
            if (first) callback(null, first.address, first.family);
            else
              callback(
                Object.assign(new Error(`${hostname} has no IPv${options.family} address`), {
                  code: 'ENOTFOUND',
                }),
                '',
                4,
              );
          }
        },
        (e: Error) => callback(e as NodeJS.ErrnoException, '', 4),
      );
    };
  const direct = buildConnector({ lookup: lookupWith(false) });
  const filtered = buildConnector({ lookup: lookupWith(true) });
  const dispatcher = new Agent({
    connect(opts, callback) {
      const host = opts.hostname;
      const hostAllowed = policy.hostAllowed(host);
      if (!hostAllowed && net.isIP(host)) {
        const refused = policy.refuse(host);
        if (refused) {
          callback(new AddressRefusedError(refused), null);
          return;
        }
      }
      const connector = hostAllowed || net.isIP(host) ? direct : filtered;
      connector(opts, (err, socket) => {
        if (err || !socket) {
          callback(err ?? new Error('no socket'), null);
          return;
        }
        // The address actually connected to, whatever resolved it.
        const peer = (socket as net.Socket).remoteAddress;
        const refused =
          hostAllowed || peer === undefined
            ? undefined
            : net.isIP(host)
              ? policy.refuse(peer)
              : policy.refusedKind(peer) && `${host} resolves to ${policy.refusedKind(peer)}`;
        if (refused) {
          socket.destroy();
          callback(new AddressRefusedError(refused), null);
          return;
        }
        callback(null, socket);
      });
    },
  });
  const guardedFetch = ((input: string | URL, init?: RequestInit) =>
    undiciFetch(input, {
      ...(init as object),
      dispatcher,
    } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch;
  // Closing twice (deps.close() is idempotent for its other parts) must not throw: undici
  // rejects a second close() with ClientDestroyedError, so the first close is kept.
  let closing: Promise<void> | undefined;
  return {
    fetch: guardedFetch,
    dispatcher,
    maxRedirects: MAX_REDIRECTS,
    close: () => (closing ??= dispatcher.close()),
  };
}

/** The refusal behind a failed fetch, if the guard refused it. */
export function refusalOf(e: unknown): AddressRefusedError | undefined {
  for (let c: unknown = e, i = 0; c && i < 5; c = (c as { cause?: unknown }).cause, i++) {
    if (c instanceof AddressRefusedError) return c;
    if ((c as { code?: unknown }).code === 'E_ADDRESS_REFUSED') return c as AddressRefusedError;
  }
  return undefined;
}
