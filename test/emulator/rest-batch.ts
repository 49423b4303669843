import { isRecord, parseForm } from './http-util.js';
import { param, RestError, type MethodResult } from './rest-error.js';

/**
 * At most 50 commands per batch run (CORE:classes/general/rest_util.php `BATCH_MAX_LENGTH`).
 * The batch itself still answers 200: each command past the 50th ends with
 * ERROR_BATCH_LENGTH_EXCEEDED "Max batch length exceeded" in `result_error`
 * (CORE:classes/general/rest_provider.php `methodsBatch`; DOCS:settings/how-to-call-rest-api/
 * batch.md: "subqueries beyond the limit will end with an error", "the request itself
 * completes with a 200 status").
 */
export const BATCH_LIMIT = 50;

export type Outcome =
  | { ok: true; value: MethodResult; time: Record<string, unknown> }
  | { ok: false; error: RestError };

/** Runs one inner command: the method name (lower-cased) and its parsed params. */
export type RunCommand = (method: string, params: Record<string, unknown>) => Promise<Outcome>;

/**
 * PHP serialises an empty array as `[]` and a list keyed 0..n-1 as a JSON array, which is
 * why an empty `result_error` reads `[]` on the wire. Receivers must cope, so we mirror it.
 */
function phpArray(entries: Array<[string, unknown]>): unknown {
  if (entries.every(([k], i) => k === String(i))) return entries.map(([, v]) => v);
  return Object.fromEntries(entries);
}

function truthy(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 'true' || v === 'Y' || v === 'y';
}

/** `$result[key][FIELD]` in a later command is replaced by that earlier result's value. */
function substitute(query: string, results: Map<string, unknown>): string {
  return query.replace(
    /\$result\[([^\]]+)\]((?:\[[^\]]*\])*)/g,
    (whole, key: string, path: string) => {
      let value: unknown = results.get(key);
      for (const m of path.matchAll(/\[([^\]]*)\]/g)) {
        value =
          isRecord(value) || Array.isArray(value)
            ? (value as Record<string, unknown>)[m[1] ?? '']
            : undefined;
      }
      return value === undefined ? whole : encodeURIComponent(String(value));
    },
  );
}

export async function runBatch(
  params: Record<string, unknown>,
  run: RunCommand,
): Promise<MethodResult> {
  const cmd = param(params, 'cmd');
  const commands: Array<[string, string]> = Array.isArray(cmd)
    ? cmd.map((c, i) => [String(i), String(c)])
    : isRecord(cmd)
      ? Object.entries(cmd).map(([k, c]) => [k, String(c)])
      : [];
  const halt = truthy(param(params, 'halt'));
  const results = new Map<string, unknown>();
  const result: Array<[string, unknown]> = [];
  const errors: Array<[string, unknown]> = [];
  const totals: Array<[string, unknown]> = [];
  const nexts: Array<[string, unknown]> = [];
  const times: Array<[string, unknown]> = [];
  let count = 0;
  for (const [key, command] of commands) {
    if (count++ >= BATCH_LIMIT) {
      errors.push([
        key,
        { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: 'Max batch length exceeded' },
      ]);
      if (halt) break;
      continue;
    }
    const q = command.indexOf('?');
    const method = (q < 0 ? command : command.slice(0, q))
      .trim()
      .toLowerCase()
      .replace(/\.json$/, '');
    const query = q < 0 ? '' : substitute(command.slice(q + 1), results);
    const outcome = await run(method, parseForm(query));
    if (!outcome.ok) {
      errors.push([
        key,
        { error: outcome.error.code, error_description: outcome.error.description },
      ]);
      if (halt) break;
      continue;
    }
    results.set(key, outcome.value.result);
    result.push([key, outcome.value.result]);
    if (outcome.value.total !== undefined) totals.push([key, outcome.value.total]);
    if (outcome.value.next !== undefined) nexts.push([key, outcome.value.next]);
    times.push([key, outcome.time]);
  }
  return {
    result: {
      result: phpArray(result),
      result_error: phpArray(errors),
      result_total: phpArray(totals),
      result_next: phpArray(nexts),
      result_time: phpArray(times),
    },
  };
}
