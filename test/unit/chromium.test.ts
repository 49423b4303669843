import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { findChromium } from '../helpers/chromium.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('finding Chromium for the browser tests', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());
  const bin = (dir: string, name: string, mode = 0o755) => {
    fs.mkdirSync(path.join(tmp.dir, dir), { recursive: true });
    const file = path.join(tmp.dir, dir, name);
    fs.writeFileSync(file, '#!/bin/sh\n', { mode });
    return file;
  };
  const onPath = (...dirs: string[]) => dirs.map((d) => path.join(tmp.dir, d)).join(path.delimiter);

  it('takes CHROMIUM_PATH first, then chromium, chromium-browser or google-chrome on PATH', () => {
    const given = bin('given', 'my-chrome');
    const browser = bin('a', 'chromium-browser');
    const chrome = bin('b', 'google-chrome');
    expect(findChromium({ CHROMIUM_PATH: given, PATH: onPath('a') })).toBe(given);
    expect(findChromium({ PATH: onPath('a', 'b') })).toBe(browser);
    expect(findChromium({ PATH: onPath('b', 'a') })).toBe(chrome);
  });

  it('finds none on a machine without one, and ignores files that are not executable', () => {
    bin('c', 'chromium', 0o644);
    expect(findChromium({ PATH: onPath('c', 'empty') })).toBeUndefined();
    expect(
      findChromium({ CHROMIUM_PATH: path.join(tmp.dir, 'missing'), PATH: '' }),
    ).toBeUndefined();
  });
});
