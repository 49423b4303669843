// Jest's test order (package.json › jest.testSequencer). Two files run at a time (maxWorkers),
// so a long file started last leaves the other worker idle while it runs: Jest starts the
// slowest first, but only knows which they are from its cache of earlier runs, and a fresh
// clone (CI) has none: it then goes by file size, and the reliability suite, a short file,
// ran last for 80 s. Here a file with no cached time gets the seconds below, measured with
// two workers on 2 cores (2026-12-05, the larger of the SQLite and PostgreSQL passes), and
// every other file 0, after them.
import Sequencer from '@jest/test-sequencer';

const BaseSequencer = Sequencer.default ?? Sequencer;

/** Seconds, for files that take 8 s or more. */
const SLOW = {
  'test/reliability/reliability.test.ts': 85,
  'test/browser/rule-builder-admin.test.ts': 55,
  'test/integration/retention-prune.test.ts': 61,
  'test/integration/docker-image.test.ts': 41,
  'test/integration/rest-budget.test.ts': 38,
  'test/integration/cli.test.ts': 33,
  'test/integration/intake-memory.test.ts': 28,
  'test/integration/scale-out-pg.test.ts': 27,
  'test/integration/intake.test.ts': 25,
  'test/browser/deal-tab.test.ts': 25,
  'test/browser/ui.test.ts': 19,
  'test/integration/offline-net-scale.test.ts': 18,
  'test/browser/ui-ru.test.ts': 18,
  'test/browser/rule-builder.test.ts': 17,
  'test/integration/fair-processing.test.ts': 16,
  'test/integration/demo.test.ts': 16,
  'test/integration/health.test.ts': 15,
  'test/integration/upgrade-rollups.test.ts': 14,
  'test/integration/recovery-sweep.test.ts': 14,
  'test/integration/destinations.test.ts': 13,
  'test/integration/keys.test.ts': 13,
  'test/integration/lifecycle-flood.test.ts': 13,
  'test/browser/rule-builder-edit.test.ts': 12,
  'test/browser/entry-retry.test.ts': 11,
  'test/integration/pg-instances-bitrix.test.ts': 11,
  'test/browser/alerts-chats.test.ts': 11,
  'test/integration/paid-deal.test.ts': 10,
  'test/integration/telegram-chats.test.ts': 10,
  'test/integration/worker.test.ts': 10,
  'test/browser/frame-resize.test.ts': 9,
  'test/integration/install-rate-limit.test.ts': 9,
  'test/browser/log-narrow.test.ts': 8,
};

export default class SlowestFirst extends BaseSequencer {
  time(test) {
    const cached = super.time(test);
    if (cached !== undefined) return cached;
    const rel = test.path.slice(test.context.config.rootDir.length + 1).replaceAll('\\', '/');
    return (SLOW[rel] ?? 0) * 1000;
  }
}
