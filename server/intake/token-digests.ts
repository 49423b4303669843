import type { SecretBox } from '../lib/crypto.js';
import { ownString } from '../lib/own-string.js';

/** Application tokens seen recently, with their digests. */
const DIGEST_CACHE_SIZE = 1024;
/**
 * Longest token kept in the cache. Application tokens (of apps and outgoing webhooks) are 32
 * hex characters; a stranger's token may be as long as BODY_LIMIT, and 1,024 of those would
 * hold a quarter of a gigabyte. Longer ones are digested each time.
 */
const MAX_CACHED_TOKEN_LENGTH = 256;

/**
 * A portal sends the same application token with every delivery: its HMAC is computed
 * once, not per request. The comparison with the stored digest stays constant-time, and
 * a flood of forged tokens only empties the cache (then each costs one HMAC, as before).
 */
export function createTokenDigests(box: Pick<SecretBox, 'digest'>): (token: string) => string {
  const digests = new Map<string, string>();
  return (token) => {
    if (token.length > MAX_CACHED_TOKEN_LENGTH) return box.digest(token);
    let digest = digests.get(token);
    if (digest === undefined) {
      digest = box.digest(token);
      if (digests.size >= DIGEST_CACHE_SIZE) digests.clear();
      digests.set(ownString(token), digest);
    }
    return digest;
  };
}
