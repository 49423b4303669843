import { describe, expect, it } from '@jest/globals';
import { fmtMs } from '../../server/ui/context.js';
import { parseDateInput } from '../../server/ui/filters.js';
import { localDayEdges } from '../../server/ui/pages/dashboard-page.js';
import {
  formatTime,
  isTimeZone,
  isoInZone,
  offsetLabel,
  offsetMinutes,
  offsetOfDateString,
} from '../../server/ui/time.js';

describe('times in a time zone', () => {
  const summer = Date.UTC(2026, 6, 1, 12, 0, 0);
  const winter = Date.UTC(2026, 0, 15, 12, 0, 0);

  it('knows IANA zones and fixed offsets, and refuses anything else', () => {
    expect(isTimeZone('Europe/Berlin')).toBe(true);
    expect(isTimeZone('+03:00')).toBe(true);
    expect(isTimeZone('Mars/Olympus')).toBe(false);
    expect(isTimeZone('')).toBe(false);
  });

  it('follows daylight saving and labels the offset', () => {
    expect(offsetMinutes('Europe/Berlin', summer)).toBe(120);
    expect(offsetMinutes('Europe/Berlin', winter)).toBe(60);
    expect(offsetMinutes('-04:30', winter)).toBe(-270);
    expect([0, 180, 330, -270].map(offsetLabel)).toEqual(['UTC', 'UTC+3', 'UTC+5:30', 'UTC-4:30']);
    expect(formatTime(summer, 'Europe/Berlin')).toBe('2026-07-01 14:00:00 (UTC+2)');
    expect(isoInZone(winter, 'Asia/Kolkata')).toBe('2026-01-15T17:30:00+05:30');
    expect(isoInZone(winter, 'UTC')).toBe('2026-01-15T12:00:00Z');
  });

  it('reads a date filter as local midnight, the end of day as the next one', () => {
    expect(parseDateInput('2026-07-01', false, 'Europe/Berlin')).toBe(Date.UTC(2026, 5, 30, 22));
    expect(parseDateInput('2026-07-01', true, 'Europe/Berlin')).toBe(Date.UTC(2026, 6, 1, 22));
    expect(parseDateInput('2026-03-29', true, 'Europe/Berlin')).toBe(Date.UTC(2026, 2, 29, 22));
    expect(parseDateInput('2026-07-01T10:30', false, '+03:00')).toBe(Date.UTC(2026, 6, 1, 7, 30));
  });

  it("takes the portal's offset from server.time", () => {
    expect(offsetOfDateString('2024-08-05T09:02:13+03:00')).toBe('+03:00');
    expect(offsetOfDateString('2024-08-05T09:02:13-0530')).toBe('-05:30');
    expect(offsetOfDateString(42)).toBeUndefined();
  });
});

describe("the dashboard's days", () => {
  // [why, now, zone, days, the edges expected]
  const cases: Array<[string, number, string, number, string[]]> = [
    [
      // Berlin went to summer time on 2026-03-29 at 02:00: that day is 23 hours long.
      'start at local midnight, a daylight-saving day 23 hours long',
      Date.UTC(2026, 2, 30, 12),
      'Europe/Berlin',
      3,
      [
        '2026-03-27T23:00:00.000Z',
        '2026-03-28T23:00:00.000Z',
        '2026-03-29T22:00:00.000Z',
        '2026-03-30T22:00:00.000Z',
      ],
    ],
    [
      'west of UTC, just before local midnight, are still the local day before',
      Date.UTC(2026, 10, 28, 4, 59),
      'America/New_York',
      1,
      ['2026-11-27T05:00:00.000Z', '2026-11-28T05:00:00.000Z'],
    ],
    [
      // Chile went to summer time at 00:00 on 2026-09-06 (00:00 -04 became 01:00 -03).
      'start a day whose midnight the clocks skip at the end of the jump',
      Date.UTC(2026, 8, 7, 12),
      'America/Santiago',
      3,
      [
        '2026-09-05T04:00:00.000Z',
        '2026-09-06T04:00:00.000Z',
        '2026-09-07T03:00:00.000Z',
        '2026-09-08T03:00:00.000Z',
      ],
    ],
  ];
  it.each(cases)('%s', (_why, now, zone, days, want) => {
    expect(localDayEdges(now, zone, days).map((t) => new Date(t).toISOString())).toEqual(want);
  });
});

describe('durations in the page language', () => {
  it('writes tenths with a point in English and a comma in Russian', () => {
    expect([fmtMs(250), fmtMs(1500), fmtMs(180_000), fmtMs(7_200_000)]).toEqual([
      '250 ms',
      '1.5 s',
      '3 min',
      '2.0 h',
    ]);
    expect([fmtMs(1500, 'ru'), fmtMs(7_200_000, 'ru')]).toEqual(['1,5 с', '2,0 ч']);
  });
});
