import type { Knex } from 'knex';
import * as m0001 from './0001-init.js';
import * as m0002 from './0002-processing.js';
import * as m0003 from './0003-sessions.js';
import * as m0004 from './0004-alerts.js';
import * as m0005 from './0005-replay-runs.js';
import * as m0006 from './0006-drop-events-entity-index.js';
import * as m0007 from './0007-jobs-portal-pending.js';
import * as m0008 from './0008-recovery.js';
import * as m0009 from './0009-rate-buckets.js';
import * as m0010 from './0010-install-proof.js';
import * as m0011 from './0011-portal-refresh-and-pause.js';
import * as m0013 from './0013-operations.js';
import * as m0014 from './0014-retention.js';
import * as m0015 from './0015-fair-queue.js';
import * as m0016 from './0016-rollups.js';
import * as m0017 from './0017-portal-lang.js';
import * as m0018 from './0018-step-tests.js';
import * as m0019 from './0019-job-topics.js';
import * as m0020 from './0020-intake-skips-indexes.js';
import * as m0021 from './0021-portal-http-destinations.js';
import * as m0022 from './0022-alert-state-lookups.js';
import * as m0023 from './0023-rejected-hold-no-key.js';
import * as m0024 from './0024-waiting-by-portal.js';
import * as m0025 from './0025-telegram-chats.js';
import * as m0026 from './0026-telegram-chat-links.js';
import * as m0027 from './0027-user-token-renewals.js';

/** Ordered, append-only list of migrations. Never edit a migration that has shipped. */
export const migrations: ReadonlyArray<{ name: string; module: Knex.Migration }> = [
  { name: '0001-init', module: m0001 },
  { name: '0002-processing', module: m0002 },
  { name: '0003-sessions', module: m0003 },
  { name: '0004-alerts', module: m0004 },
  { name: '0005-replay-runs', module: m0005 },
  { name: '0006-drop-events-entity-index', module: m0006 },
  { name: '0007-jobs-portal-pending', module: m0007 },
  { name: '0008-recovery', module: m0008 },
  { name: '0009-rate-buckets', module: m0009 },
  { name: '0010-install-proof', module: m0010 },
  { name: '0011-portal-refresh-and-pause', module: m0011 },
  { name: '0013-operations', module: m0013 },
  { name: '0014-retention', module: m0014 },
  { name: '0015-fair-queue', module: m0015 },
  { name: '0016-rollups', module: m0016 },
  { name: '0017-portal-lang', module: m0017 },
  { name: '0018-step-tests', module: m0018 },
  { name: '0019-job-topics', module: m0019 },
  { name: '0020-intake-skips-indexes', module: m0020 },
  { name: '0021-portal-http-destinations', module: m0021 },
  { name: '0022-alert-state-lookups', module: m0022 },
  { name: '0023-rejected-hold-no-key', module: m0023 },
  { name: '0024-waiting-by-portal', module: m0024 },
  { name: '0025-telegram-chats', module: m0025 },
  { name: '0026-telegram-chat-links', module: m0026 },
  { name: '0027-user-token-renewals', module: m0027 },
];
