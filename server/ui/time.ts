/**
 * Times as the user reads them: in their Bitrix24 time zone, labelled with its offset
 * (`2026-11-27 14:03:05 (UTC+3)`). A zone is an IANA name (`Europe/Moscow`, what `profile`
 * returns as TIME_ZONE) or a fixed offset (`+03:00`, what `server.time` shows for the portal).
 */

const FIXED = /^([+-])(\d{2}):?(\d{2})$/;

/** Whether the runtime knows this IANA zone (or it is a fixed `±hh:mm` offset). */
export function isTimeZone(zone: string): boolean {
  if (FIXED.test(zone)) return true;
  if (!/^[A-Za-z][\w+-]*(\/[\w+-]+)*$/.test(zone)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function partsIn(zone: string, ms: number): Record<string, number> {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(zone, f);
  }
  const out: Record<string, number> = {};
  for (const p of f.formatToParts(new Date(ms))) {
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  return out;
}

/** Minutes east of UTC in `zone` at the instant `ms` (daylight saving included). */
export function offsetMinutes(zone: string, ms: number): number {
  const fixed = FIXED.exec(zone);
  if (fixed) return (fixed[1] === '-' ? -1 : 1) * (Number(fixed[2]) * 60 + Number(fixed[3]));
  if (zone === 'UTC' || !isTimeZone(zone)) return 0;
  const p = partsIn(zone, ms);
  const asUtc = Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
  return Math.round((asUtc - (ms - (ms % 1000))) / 60_000);
}

/** `UTC+3`, `UTC-4:30`, `UTC`. */
export function offsetLabel(minutes: number): string {
  if (minutes === 0) return 'UTC';
  const a = Math.abs(minutes);
  const m = a % 60;
  return `UTC${minutes < 0 ? '-' : '+'}${Math.floor(a / 60)}${m ? `:${String(m).padStart(2, '0')}` : ''}`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** `YYYY-MM-DD HH:mm:ss` of the wall clock in `zone`. */
export function wallClock(ms: number, zone: string): string {
  const d = new Date(ms + offsetMinutes(zone, ms) * 60_000);
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`
  );
}

/** A time for a page: wall clock in the user's zone with its offset, `2026-11-27 14:03:05 (UTC+3)`. */
export function formatTime(ms: number | null | undefined, zone: string): string {
  if (ms === null || ms === undefined) return '';
  return `${wallClock(ms, zone)} (${offsetLabel(offsetMinutes(zone, ms))})`;
}

/**
 * `formatTime` as HTML for a table cell: the day does not break at its hyphens (a 600 px
 * frame broke "2026-11-" from "27"), and the instant is machine-readable.
 */
export function formatTimeHtml(ms: number | null | undefined, zone: string): string {
  const n = ms === null || ms === undefined ? NaN : Number(ms);
  if (!Number.isFinite(n)) return '';
  const text = formatTime(n, zone);
  const at = text.indexOf(' ');
  const zoneAt = text.indexOf(' ', at + 1);
  // The zone in a span of its own, inside the hour: a page whose column is tighter still (the
  // deal tab in Russian at 600 px) may let it break before the zone (app.css).
  return `<time datetime="${new Date(n).toISOString()}"><span class="day">${text.slice(0, at)}</span> <span class="hour">${text.slice(at + 1, zoneAt)} <span class="zone">${text.slice(zoneAt + 1)}</span></span></time>`;
}

/** ISO 8601 with the zone's offset, for exports: `2026-11-27T14:03:05+03:00`. */
export function isoInZone(ms: number | null | undefined, zone: string): string {
  if (ms === null || ms === undefined) return '';
  const off = offsetMinutes(zone, ms);
  const a = Math.abs(off);
  const suffix =
    off === 0 ? 'Z' : `${off < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
  return `${wallClock(ms, zone).replace(' ', 'T')}${suffix}`;
}

/**
 * The instant a wall-clock time in `zone` names (`2026-05-01T00:00` local → ms). The offset
 * is taken at the guess and checked once more, which settles daylight-saving edges.
 */
export function zonedToUtc(localAsUtcMs: number, zone: string): number {
  const first = localAsUtcMs - offsetMinutes(zone, localAsUtcMs) * 60_000;
  return localAsUtcMs - offsetMinutes(zone, first) * 60_000;
}

/** The `±hh:mm` offset of a Bitrix24 date string (`server.time`: `2024-08-05T09:02:13+03:00`). */
export function offsetOfDateString(s: unknown): string | undefined {
  if (typeof s !== 'string') return undefined;
  const m = /([+-]\d{2}):?(\d{2})$/.exec(s.trim());
  if (m) return `${m[1]}:${m[2]}`;
  return /Z$/.test(s.trim()) ? '+00:00' : undefined;
}
