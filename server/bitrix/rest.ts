import { batchCall, queueRead, type ReadQueue } from './batch.js';
import { callPortal, probePortal, type CallPath } from './call.js';
import { exchangeRefreshToken } from './oauth.js';
import { createOperatingBudget } from './operating.js';
import { createTokenProvider, refreshNow } from './token-provider.js';
import type { BitrixContext, BitrixRest, BitrixRestOptions } from './types.js';

export { BATCH_LIMIT } from './batch.js';
export type {
  BatchAnswer,
  BatchCommand,
  BatchOptions,
  BitrixContext,
  BitrixRest,
  BitrixRestOptions,
  ProbeCredential,
  ProbeOptions,
  TokenTarget,
} from './types.js';

/**
 * The Bitrix24 REST client. Every request to a portal, OAuth or inbound webhook, stored or
 * probed, takes one path (call.ts): host check, operating-time gate, its turn in the
 * portal's rate limit, one POST (transport.ts). The token provider (token-provider.ts)
 * opens the stored credentials and refreshes tokens ourselves: single-flight per portal,
 * the new pair persisted before use, only at an allowlisted OAuth server.
 */
export function createBitrixRest(ctx: BitrixContext, opts: BitrixRestOptions = {}): BitrixRest {
  const fetchFn = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  const tokens = createTokenProvider(ctx, { ...opts, fetch: fetchFn });
  const cp: CallPath = {
    ctx,
    tokens,
    operating: createOperatingBudget({ now }),
    fetch: fetchFn,
    timeoutMs: opts.timeoutMs ?? 30_000,
    probeMaxWaitMs: opts.probeMaxWaitMs ?? 3000,
    sleep: opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms))),
    now,
  };
  const reads: ReadQueue = { cp, pending: new Map() };
  return {
    limiter: tokens.limiter,
    call: (portal, method, params = {}) => callPortal(cp, portal, method, params),
    batch: (portal, cmds, o = {}) => batchCall(cp, portal, cmds, o),
    read: (portal, method, params = {}) => queueRead(reads, portal, method, params),
    probe: (target, credential, method, params = {}, opts = {}) =>
      probePortal(cp, target, credential, method, params, opts),
    exchangeRefreshToken: (serverEndpoint, refreshToken) =>
      exchangeRefreshToken(ctx.config, fetchFn, serverEndpoint, refreshToken),
    refresh: (portal) => refreshNow(tokens, portal),
  };
}
