import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { spawnServer } from '../helpers/spawn-server.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('npm start with no configuration', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('serves /healthz, prints the install URLs and stops cleanly on SIGTERM', async () => {
    const started = Date.now();
    const server = await spawnServer({ DATA_DIR: path.join(tmp.dir, 'data') });
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(server.stderr()).toMatch(/Your handler path: +http:\/\/localhost:\d+\/app/);
    expect(server.stderr()).toMatch(/Initial installation path: +http:\/\/localhost:\d+\/install/);
    expect(fs.existsSync(path.join(tmp.dir, 'data', 'secrets.json'))).toBe(true);
    expect(fs.existsSync(path.join(tmp.dir, 'data', 'b24hooks.sqlite'))).toBe(true);
    // Logs on stdout are JSON lines.
    for (const line of server.stdout().split('\n').filter(Boolean))
      expect(() => JSON.parse(line)).not.toThrow();
    expect(await server.stop('SIGTERM')).toBe(0);
  });

  it('refuses to start with a clear list of configuration problems', async () => {
    await expect(
      spawnServer({ DATA_DIR: path.join(tmp.dir, 'bad'), PORT: 'x', MAX_ATTEMPTS: '-1' }),
    ).rejects.toThrow(/PORT must be[\s\S]*MAX_ATTEMPTS must be/);
  });
});
