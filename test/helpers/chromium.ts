import fs from 'node:fs';
import path from 'node:path';

// No Jest here: the reliability suite runs outside Jest too (browser-suite.ts is Jest's side).

/** Flags for headless Chromium in a container (no sandbox user namespaces, no GPU). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
];

/**
 * How long one Playwright step (a click, a wait for an element or a navigation) may take: under
 * Jest's 30 s per test, so a step that never ends fails naming itself and where it waited
 * rather than as the test's timeout.
 */
export const BROWSER_STEP_TIMEOUT_MS = 20_000;

/** Names tried on PATH, in order (Debian, Ubuntu snap/older Debian, Google's packages). */
const NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'chrome'];

const executable = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
};

/**
 * The Chromium (or Chrome) the browser tests drive: `CHROMIUM_PATH` when set, else the first
 * of chromium, chromium-browser, google-chrome on PATH. Undefined when there is none.
 */
export function findChromium(
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | undefined {
  const given = env.CHROMIUM_PATH?.trim();
  if (given) return executable(given) ? given : undefined;
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const name of NAMES) {
      const file = path.join(dir, name);
      if (executable(file)) return fs.realpathSync(file);
    }
  }
  return undefined;
}

/** Why there is no browser, for the banner and for CI's failure. */
export function missingChromiumReason(env = process.env): string {
  return env.CHROMIUM_PATH?.trim()
    ? `CHROMIUM_PATH=${env.CHROMIUM_PATH} is not an executable file`
    : `no chromium, chromium-browser or google-chrome on PATH and no CHROMIUM_PATH`;
}

/** The loud notice a skipped browser check prints (like the PostgreSQL pass). */
export function chromiumSkippedBanner(what: string): string {
  const line = '!'.repeat(72);
  return (
    `\n${line}\n!! ${what} SKIPPED: ${missingChromiumReason()}.\n` +
    `!! Install one (apt-get install chromium) or set CHROMIUM_PATH; under CI=true this fails.\n${line}\n\n`
  );
}
