import type { Env } from './types.js';

/** Splits a comma or space separated value; undefined when unset or blank. */
export function list(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  return value
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * The environment with the problems found so far: each section parser reads its variables
 * through it and adds a line per bad value, so loadConfig reports them all at once.
 */
export interface EnvReader {
  readonly env: Env;
  readonly problems: string[];
  /** The trimmed value; undefined when unset or blank. */
  text(name: string): string | undefined;
  /** An integer from `min` to `max`; the default when unset or bad. */
  int(name: string, def: number, min: number, max: number): number;
  /** A number above 0 and at most 1; the default when unset or bad. */
  share(name: string, def: number): number;
  /** An http(s) URL without trailing slashes; the default when unset or bad. */
  url(name: string, def: string | undefined): string | undefined;
}

export function envReader(env: Env): EnvReader {
  const problems: string[] = [];
  const unset = (raw: string | undefined): raw is undefined =>
    raw === undefined || raw.trim() === '';
  return {
    env,
    problems,
    text: (name) => env[name]?.trim() || undefined,
    int(name, def, min, max) {
      const raw = env[name];
      if (unset(raw)) return def;
      // Digits only: Number() would also read "1e3" or "0x10", which an operator writing a
      // count of days or workers did not mean (and "" or "  " as 0).
      const n = /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(n) || n < min || n > max) {
        problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
        return def;
      }
      return n;
    },
    share(name, def) {
      const raw = env[name];
      if (unset(raw)) return def;
      const n = Number(raw);
      if (!Number.isFinite(n) || n <= 0 || n > 1) {
        problems.push(`${name} must be a number above 0 and at most 1, got "${raw}"`);
        return def;
      }
      return n;
    },
    url(name, def) {
      const raw = env[name]?.trim() || def;
      if (raw === undefined) return undefined;
      try {
        const u = new URL(raw);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
        return raw.replace(/\/+$/, '');
      } catch {
        problems.push(`${name} must be an http(s) URL, got "${raw}"`);
        return def;
      }
    },
  };
}
