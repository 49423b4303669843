import type { Env } from '../../server/config.js';
import { runCli } from '../../server/cli/run.js';
import type { TestDeps } from './test-deps.js';

/** Runs the operator CLI in-process against a test data dir (same secrets), capturing output. */
export async function runCliIn(t: TestDeps, argv: string[], env: Env = {}) {
  let out = '';
  let err = '';
  const code = await runCli(
    argv,
    {
      DATA_DIR: t.dir,
      SESSION_SECRET: t.deps.config.sessionSecret,
      TOKEN_ENCRYPTION_KEY: t.deps.config.tokenEncryptionKey.toString('hex'),
      // Rule steps in tests post to stand-ins on loopback.
      ACTION_PRIVATE_HOSTS: '127.0.0.0/8',
      ...t.dbEnv,
      ...env,
    },
    { out: (s) => (out += s), err: (s) => (err += s) },
    { clock: t.clock },
  );
  return { code, out, err };
}

/** `rules test` for one record (the dry run of the map against it). */
export const rulesTestArgs = (memberId: string, event: string, id: string): string[] => [
  'rules',
  'test',
  '--portal',
  memberId,
  '--event',
  event,
  '--id',
  id,
];
