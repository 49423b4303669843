/**
 * Integration files that never open the test database: they test the emulator, a client, a
 * script, or spawn a server or the demo on its own SQLite file (spawn-server passes only the
 * environment it is given), or check SQLite itself. On the PostgreSQL pass they would only
 * repeat the SQLite pass (about 40 s of file time). `test/unit/pg-pass-scope.test.ts` checks that
 * none of them reaches for the test database.
 */
export const SQLITE_ONLY = [
  'bitrix-answer-cap',
  'channel-check',
  'demo',
  'emulator-abort',
  'emulator-event-wire',
  'emulator-items-tasks',
  'emulator-metadata',
  'emulator-oauth',
  'emulator-portal',
  'emulator-quote-invoice',
  'emulator-rest',
  'host-resolver',
  'http-client-error',
  'migrations-log',
  'script-entries',
  'secrets',
  'sqlite-statements',
  'start',
];
