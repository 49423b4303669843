import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { B24OAuth } from '@bitrix24/b24jssdk';
import {
  startEmulator,
  type BitrixEmulator,
  type EmulatedPortal,
} from '../emulator/bitrix-emulator.js';

async function refresh(
  emu: BitrixEmulator,
  fields: Record<string, string>,
  method: 'GET' | 'POST' = 'POST',
): Promise<{ status: number; json: Record<string, unknown> }> {
  const form = new URLSearchParams({ grant_type: 'refresh_token', ...fields });
  const res =
    method === 'GET'
      ? await fetch(`${emu.oauthUrl}/oauth/token/?${form.toString()}`)
      : await fetch(`${emu.oauthUrl}/oauth/token/`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: form,
        });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('OAuth server and token lifecycle', () => {
  let emu: BitrixEmulator;
  let portal: EmulatedPortal;

  beforeAll(async () => {
    emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret' });
    portal = await emu.addPortal({ installed: true });
  });

  afterAll(async () => {
    await emu.close();
  });

  it('answers 401 expired_token for an expired access token', async () => {
    const auth = portal.issueUserAuth(1);
    portal.expireAccessTokens();
    const res = await fetch(`${portal.clientEndpoint}profile?auth=${auth.accessToken}`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: 'expired_token',
      error_description: 'The access token provided has expired.',
    });
  });

  it('rotates the refresh token, and the old one then gives invalid_grant', async () => {
    const auth = portal.issueUserAuth(2);
    const first = await refresh(emu, {
      client_id: 'local.abc',
      client_secret: 's3cret',
      refresh_token: auth.refreshToken,
    });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({
      client_endpoint: portal.clientEndpoint,
      domain: new URL(emu.oauthUrl).host,
      expires_in: 3600,
      member_id: portal.memberId,
      server_endpoint: emu.serverEndpoint,
      status: 'L',
      user_id: 2,
    });
    expect(first.json['refresh_token']).not.toBe(auth.refreshToken);
    const profile = await fetch(
      `${portal.clientEndpoint}profile?auth=${String(first.json['access_token'])}`,
    );
    expect(((await profile.json()) as { result: { ID: string } }).result.ID).toBe('2');

    const reused = await refresh(emu, {
      client_id: 'local.abc',
      client_secret: 's3cret',
      refresh_token: auth.refreshToken,
    });
    expect(reused.status).toBe(400);
    expect(reused.json['error']).toBe('invalid_grant');
  });

  it('accepts the documented GET form of the refresh request', async () => {
    const auth = portal.issueUserAuth(1);
    const res = await refresh(
      emu,
      { client_id: 'local.abc', client_secret: 's3cret', refresh_token: auth.refreshToken },
      'GET',
    );
    expect(res.status).toBe(200);
  });

  it('answers invalid_client for a wrong client secret and records the attempt', async () => {
    const auth = portal.issueUserAuth(1);
    const res = await refresh(emu, {
      client_id: 'local.abc',
      client_secret: 'wrong',
      refresh_token: auth.refreshToken,
    });
    // 400, as a real server answered bitrix24/b24pysdk's integration test.
    expect(res.status).toBe(400);
    expect(res.json['error']).toBe('invalid_client');
    expect(emu.oauthCalls.at(-1)).toMatchObject({
      grantType: 'refresh_token',
      clientId: 'local.abc',
      clientSecretOk: false,
      status: 400,
    });
  });

  it('answers 200 wrong_client for a client id it does not know', async () => {
    // bitrix24/b24pysdk tests/integration/errors/test_errors_oauth.py
    // `test_error_bitrix_oauth_wrong_client`: HTTP 200, `{"error": "wrong_client"}`.
    const auth = portal.issueUserAuth(1);
    const res = await refresh(emu, {
      client_id: 'local.other',
      client_secret: 's3cret',
      refresh_token: auth.refreshToken,
    });
    expect([res.status, res.json]).toEqual([200, { error: 'wrong_client' }]);
  });

  it('fails every refresh with invalid_grant after revokeRefreshTokens', async () => {
    const auth = portal.issueUserAuth(1);
    portal.revokeRefreshTokens();
    const res = await refresh(emu, {
      client_id: 'local.abc',
      client_secret: 's3cret',
      refresh_token: auth.refreshToken,
    });
    expect(res.json['error']).toBe('invalid_grant');
  });

  it("refuses a removed app's tokens from the portal's cache for an hour, then as the OAuth server does", async () => {
    let now = Date.now();
    const own = await startEmulator({
      clientId: 'local.abc',
      clientSecret: 's3cret',
      now: () => now,
    });
    try {
      const gone = await own.addPortal({ installed: true });
      const profile = async (token: string) => {
        const res = await fetch(`${gone.clientEndpoint}profile?auth=${token}`);
        return [res.status, ((await res.json()) as { error?: string }).error];
      };
      const used = gone.issueUserAuth(1).accessToken;
      const unused = gone.issueUserAuth(1).accessToken;
      expect((await profile(used))[0]).toBe(200); // the portal now holds the server's answer
      await gone.uninstall({ clean: false });
      // CORE lib/oauth/auth.php: the cached answer, then the app found inactive.
      expect(await profile(used)).toEqual([401, 'APPLICATION_NOT_FOUND']);
      // Not in the cache: the OAuth server's own refusal (bitrix24/b24pysdk's test).
      expect(await profile(unused)).toEqual([401, 'ERROR_OAUTH']);
      now += 3600_000; // the cache's hour (CACHE_TTL)
      expect(await profile(used)).toEqual([401, 'ERROR_OAUTH']);
    } finally {
      await own.close();
    }
  });

  it('answers invalid_client once the app is removed from the portal', async () => {
    // DOCS:settings/oauth/error-codes.md: invalid_client, "The application may not be
    // installed in Bitrix24".
    const gone = await emu.addPortal({ installed: true });
    const auth = gone.issueUserAuth(1);
    await gone.uninstall({ clean: false });
    const res = await refresh(emu, {
      client_id: 'local.abc',
      client_secret: 's3cret',
      refresh_token: auth.refreshToken,
    });
    expect([res.status, res.json['error']]).toEqual([400, 'invalid_client']);
    // Control: the other portal, still installed, refreshes.
    const ok = await refresh(emu, {
      client_id: 'local.abc',
      client_secret: 's3cret',
      refresh_token: portal.issueUserAuth(1).refreshToken,
    });
    expect(ok.status).toBe(200);
  });
});

describe('b24jssdk B24OAuth against the emulator', () => {
  let emu: BitrixEmulator;
  let portal: EmulatedPortal;

  beforeAll(async () => {
    emu = await startEmulator({ clientId: 'local.abc', clientSecret: 's3cret' });
    portal = await emu.addPortal({ installed: true });
    await portal.addDeal({ TITLE: 'SDK deal', OPPORTUNITY: 100 });
  });

  afterAll(async () => {
    await emu.close();
  });

  it('calls crm.deal.get, and refreshes against the OAuth server once the token expires', async () => {
    const auth = portal.issueUserAuth(1);
    const b24 = new B24OAuth(
      {
        applicationToken: auth.applicationToken,
        userId: auth.userId,
        memberId: auth.memberId,
        accessToken: auth.accessToken,
        refreshToken: auth.refreshToken,
        expires: auth.expires,
        expiresIn: auth.expiresIn,
        scope: auth.scope,
        domain: auth.domain,
        clientEndpoint: auth.clientEndpoint,
        serverEndpoint: auth.serverEndpoint,
        status: auth.status,
      },
      { clientId: 'local.abc', clientSecret: 's3cret' },
    );
    const saved: string[] = [];
    b24.setCallbackRefreshAuth(async ({ b24OAuthParams }) => {
      saved.push(b24OAuthParams.refreshToken);
    });

    const first = await b24.actions.v2.call.make({ method: 'crm.deal.get', params: { id: 1 } });
    expect(first.isSuccess).toBe(true);
    expect((first.getData()?.result as { TITLE: string }).TITLE).toBe('SDK deal');
    expect(emu.oauthCalls).toHaveLength(0);

    portal.expireAccessTokens();
    const second = await b24.actions.v2.call.make({ method: 'crm.deal.get', params: { id: 1 } });
    expect(second.isSuccess).toBe(true);
    expect(emu.oauthCalls).toEqual([
      expect.objectContaining({
        method: 'POST',
        grantType: 'refresh_token',
        clientId: 'local.abc',
        clientSecretOk: true,
        refreshToken: auth.refreshToken,
        status: 200,
      }),
    ]);
    expect(saved).toHaveLength(1);
    const calls = portal.calls.filter((c) => c.method === 'crm.deal.get');
    expect(calls.map((c) => c.status)).toEqual([200, 401, 200]);
  });
});
