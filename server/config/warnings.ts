import type { Config } from './types.js';

const LOCAL_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/**
 * What a server on a public address (APP_URL not on this machine) leaves open that the
 * contract's defaults allow: said once at start, on stderr and in the log, so the operator
 * decides rather than finds out.
 */
export function publicDeploymentWarnings(config: Config): string[] {
  let host = '';
  try {
    host = new URL(config.appUrl).hostname;
  } catch {
    return [];
  }
  if (LOCAL_HOST.test(host)) return [];
  const out: string[] = [];
  if (!config.metricsToken) {
    out.push(
      'METRICS_TOKEN is not set: /metrics is open to anyone and names every portal (member_id) and its rules; set METRICS_TOKEN on a public address.',
    );
  }
  if (config.ipAllowlist.length === 0) {
    out.push(
      "B24_IP_ALLOWLIST is not set: anyone may post to the events URL (forged deliveries are refused, but a stranger can hold a new portal's unverified slots); set B24_IP_ALLOWLIST=bitrix24 on a public address.",
    );
  }
  return out;
}
