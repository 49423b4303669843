import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A fresh temp directory; removed by `cleanup()` unless KEEP_TEST_DB=1. */
export function tempDir(prefix = 'b24hooks-test-'): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return {
    dir,
    cleanup() {
      if (process.env.KEEP_TEST_DB === '1') {
        process.stderr.write(`kept test data in ${dir}\n`);
        return;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
