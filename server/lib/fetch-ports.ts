import { createRequire } from 'node:module';

/**
 * The ports fetch never connects to (the Fetch standard's "bad ports": SMTP, SSH, X11,
 * 6665-6669, 10080 …), as undici, our fetch, lists them. Read from undici itself so the check
 * at save time and the refusal at send time cannot differ; should a later undici move the
 * list, the set is empty and only the send refuses (with its own clear message).
 */
const BAD_PORTS: ReadonlySet<string> = (() => {
  try {
    const constants = createRequire(import.meta.url)('undici/lib/web/fetch/constants.js') as {
      badPorts?: readonly string[];
    };
    return new Set((constants.badPorts ?? []).map(String));
  } catch {
    return new Set<string>();
  }
})();

/** Whether fetch refuses to connect to this port. */
export const isFetchBlockedPort = (port: string | number): boolean => BAD_PORTS.has(String(port));
