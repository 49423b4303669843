import { describe, it } from '@jest/globals';
import { chromiumSkippedBanner, findChromium, missingChromiumReason } from './chromium.js';

/**
 * `describe` for browser tests: runs them with the Chromium found; without one, skips them
 * with a banner on stderr, except under CI, where a failing test says what is missing.
 */
export function describeInChromium(name: string, fn: (executablePath: string) => void): void {
  const found = findChromium();
  if (found) {
    describe(name, () => fn(found));
    return;
  }
  if (process.env.CI) {
    describe(name, () => {
      it('needs Chromium (CI installs it in .ci/run)', () => {
        throw new Error(`browser tests FAILED: ${missingChromiumReason()}`);
      });
    });
    return;
  }
  process.stderr.write(chromiumSkippedBanner(`browser tests "${name}"`));
  describe.skip(name, () => fn(''));
}
