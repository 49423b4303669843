import { runAction } from '../../../server/actions/index.js';
import { createHttpGuard, type HostResolver } from '../../../server/lib/http-guard.js';
import { parsePrivateHosts } from '../../../server/lib/address-policy.js';
import type { Action } from '../../../server/rules/model.js';
import { validateEventMap } from '../../../server/rules/validate.js';
import { saveRuleMap } from '../../../server/rules/map-store.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { installPortal, startInstallHarness } from '../../helpers/install-harness.js';
import type { ReliabilityContext, Row } from '../types.js';

/**
 * Rule steps aimed at private addresses (server/rules/README.md#private-addresses). A loopback
 * listener (`victim`) stands for an internal service; `front.test` is a host the operator allowed,
 * which resolves (by the injected resolver) to loopback and redirects to the victim; `rebind.test`
 * resolves to the victim. One event runs a rule whose steps aim at each target (continueOnError, so
 * all run) and a control step to the allowed host. Then the same victim URLs run with the
 * victim's address allowed, proving the refused steps would have reached it.
 */
export async function privateAddressRows(ctx: ReliabilityContext): Promise<Row[]> {
  const victim = await startHttpSink(() => ({ body: { internal: 'metadata-like answer' } }));
  const vport = new URL(victim.url).port;
  const front = await startHttpSink((req) =>
    req.url.startsWith('/to-victim')
      ? { status: 302, headers: { location: `http://127.0.0.1:${vport}/via-redirect` } }
      : req.url.startsWith('/to-name')
        ? { status: 307, headers: { location: `http://rebind.test:${vport}/via-redirect-name` } }
        : { body: { ok: true } },
  );
  const fport = new URL(front.url).port;
  const resolveHost: HostResolver = async (host) => {
    if (host === 'front.test' || host === 'rebind.test') {
      return [{ address: '127.0.0.1', family: 4 }];
    }
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  };
  const targets = [
    `http://127.0.0.1:${vport}/direct`,
    `http://127.1.2.3:${vport}/loopback-range`,
    `http://[::ffff:127.0.0.1]:${vport}/ipv4-mapped`,
    `http://[::1]:${vport}/ipv6-loopback`,
    `http://rebind.test:${vport}/name`,
    `http://front.test:${fport}/to-victim`,
    `http://front.test:${fport}/to-name`,
    'http://169.254.169.254/latest/meta-data/',
    'http://10.0.0.1/',
    'http://172.16.0.1/',
    'http://192.168.1.1/',
    'http://100.64.0.1/',
    'http://[fd00::1]/',
    'http://[fe80::1]/',
    'http://224.0.0.1/',
    'http://0.0.0.0/',
  ];
  const h = await startInstallHarness({ ACTION_PRIVATE_HOSTS: 'front.test' }, {}, { resolveHost });
  try {
    const { portal, settle } = await installPortal(h);
    const steps = targets.map((url, i) => ({
      type: 'http',
      name: `s${i}`,
      method: 'POST',
      url,
      body: { n: i },
      timeoutMs: 5_000,
      continueOnError: true,
    }));
    const v = validateEventMap({
      rules: [
        {
          name: 'Reach inside',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            ...steps,
            { type: 'http', name: 'control', method: 'POST', url: `http://front.test:${fport}/ok` },
          ],
        },
      ],
    });
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    await saveRuleMap(h.t.deps.db, undefined, v.map, h.t.clock.now());
    const deal = await portal.addDeal({ TITLE: 'Private addresses', STAGE_ID: 'NEW' });
    await settle();
    await portal.updateDeal(deal.id, { STAGE_ID: 'PREPARATION' });
    await settle();
    const runs = (await h.t.deps
      .db('action_runs')
      .where({ rule_name: 'Reach inside' })
      .orderBy('id')) as Array<{ step_name: string; status: string; error: string | null }>;
    const refused = runs.filter(
      (r) => r.status === 'failed' && /refused: .*not in ACTION_PRIVATE_HOSTS/.test(r.error ?? ''),
    );
    const control = runs.find((r) => r.step_name === 'control')?.status;
    const reachedVictim = victim.requests.length;
    const frontAsked = front.requests.length;
    ctx.logs.push(
      `private addresses: ${runs.map((r) => `${r.step_name} ${r.status} ${r.error ?? ''}`).join('\n')}`,
    );

    // Control: the victim URLs with the victim's address allowed reach it.
    const allowed = createHttpGuard(parsePrivateHosts(['front.test', '127.0.0.0/8']), resolveHost);
    let reachedWhenAllowed = 0;
    const before = victim.requests.length;
    try {
      // The listener is bound to 127.0.0.1 only: the other loopback forms cannot reach it.
      for (const url of targets.slice(0, 7).filter((u) => !/\[::1\]|127\.1\.2\.3/.test(u))) {
        const step: Action = { type: 'http', method: 'POST', url, body: {} };
        await runAction(step, step, {
          config: h.t.deps.config,
          logger: h.t.deps.logger,
          idempotencyKey: 'control',
          guard: allowed,
        }).catch(() => undefined);
      }
      reachedWhenAllowed = victim.requests.length - before;
    } finally {
      await allowed.close();
    }
    const controlTargets = 5;
    return [
      {
        area: 'Private addresses',
        check: `http steps aimed at loopback, private, CGNAT, unique-local, link-local (metadata), multicast and unspecified addresses: directly, IPv4-mapped, via a redirect from an allowed host and via names resolving to loopback (${targets.length} steps)`,
        measured: `refused ${refused.length} of ${targets.length} (permanent, reason named) · requests that reached the loopback listener ${reachedVictim} · allowed host asked ${frontAsked} (2 redirects + control) · control step ${control ?? 'missing'} · same URLs with the address allowed reached it ${reachedWhenAllowed} of ${controlTargets}`,
        expected: 'all refused, 0 reached; allowed, they reach it',
        pass:
          refused.length === targets.length &&
          reachedVictim === 0 &&
          frontAsked === 3 &&
          control === 'succeeded' &&
          reachedWhenAllowed === controlTargets,
      },
    ];
  } finally {
    ctx.logs.push(...h.t.logs.lines);
    await h.close();
    await victim.close();
    await front.close();
  }
}
