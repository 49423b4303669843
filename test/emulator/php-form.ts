/**
 * PHP `http_build_query` encoding, which is how Bitrix24 form-encodes event deliveries
 * (test/fixtures/events/README.md). PHP `urlencode` leaves only `[A-Za-z0-9_.-]` as is, turns a
 * space into `+` and percent-encodes every other UTF-8 byte in upper-case hex, brackets in keys
 * included.
 */

export type PhpScalar = string | number | boolean | null | undefined;
export type PhpValue = PhpScalar | PhpValue[] | { [key: string]: PhpValue };
export type FormPair = readonly [string, string];

const UNRESERVED = /^[A-Za-z0-9_.-]$/;

export function phpUrlencode(value: string): string {
  let out = '';
  for (const ch of value) {
    if (UNRESERVED.test(ch)) out += ch;
    else if (ch === ' ') out += '+';
    else
      for (const byte of Buffer.from(ch, 'utf8'))
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Joins key/value pairs in the given order, each side PHP-urlencoded. */
export function encodePhpForm(pairs: ReadonlyArray<readonly [string, string | number]>): string {
  return pairs.map(([k, v]) => `${phpUrlencode(k)}=${phpUrlencode(String(v))}`).join('&');
}

/**
 * Flattens a nested value into bracket-keyed pairs the way `http_build_query` walks it:
 * insertion order, `null`/`undefined` skipped, booleans as `1`/`0`.
 */
export function flattenPhp(key: string, value: PhpValue): FormPair[] {
  if (value === null || value === undefined) return [];
  if (typeof value === 'boolean') return [[key, value ? '1' : '0']];
  if (typeof value === 'string' || typeof value === 'number') return [[key, String(value)]];
  const entries: Array<[string, PhpValue]> = Array.isArray(value)
    ? value.map((v, i) => [String(i), v])
    : Object.entries(value);
  return entries.flatMap(([sub, v]) => flattenPhp(`${key}[${sub}]`, v));
}
