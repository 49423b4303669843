import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { AppError } from '../../server/lib/errors.js';
import { listen, listenRefusal } from '../../server/start.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * `npm start` on a port something else holds: the operator gets one line saying what is
 * wrong and which setting to change (server/main.ts prints CONFIG errors without a stack).
 */
describe('starting on an address that cannot be listened on', () => {
  let t: TestDeps;
  let taken: net.Server;
  let port: number;
  beforeAll(async () => {
    t = await createTestDeps();
    taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    port = (taken.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((r) => taken.close(r));
    await t.close();
  });

  it('says the port is in use and to set PORT, as a configuration error', async () => {
    const err = await listen(t.deps, (_req, res) => res.end(), port, '127.0.0.1').catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG');
    expect((err as Error).message).toBe(
      `cannot listen on 127.0.0.1:${port}: another program already listens there; stop it, or set PORT (and HOST) to a free address`,
    );
  });

  it('says HOST is no address of the machine when it does not resolve (HOST=999.1.1.1)', () => {
    // Node looks such a HOST up by name; the lookup's error was printed with its stack, without
    // naming HOST. Made here, not looked up: tests send nothing off loopback.
    const lookup = Object.assign(new Error('getaddrinfo ENOTFOUND 999.1.1.1'), {
      code: 'ENOTFOUND',
    });
    const err = listenRefusal(lookup, '999.1.1.1', 3000);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG');
    expect(err.message).toBe(
      'cannot listen on 999.1.1.1:3000: HOST is no address of this machine, nor a name that resolves; set HOST to one of its addresses, or 0.0.0.0',
    );
  });
});
