import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { effectiveMap, effectiveMapWithSource } from '../../server/rules/map-store.js';
import { projectRoot } from '../../server/lib/project-root.js';
import { runCliIn } from '../helpers/cli.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/** The CLI on a server whose SMS gateway is set up (the maps here have SMS steps). */
const SMS_SET_UP = { SMS_PROVIDER: 'generic', SMS_URL: 'http://127.0.0.1:9/sms' };
const cli = (t: TestDeps, argv: string[]) => runCliIn(t, argv, SMS_SET_UP);

const samplePath = path.join(projectRoot(), 'server/rules/samples/paid-deal.json');

describe('rules import / export', () => {
  let t: TestDeps;
  const file = (name: string, doc: unknown) => {
    const p = path.join(t.dir, name);
    fs.writeFileSync(p, typeof doc === 'string' ? doc : JSON.stringify(doc));
    return p;
  };

  beforeAll(async () => {
    t = await createTestDeps();
    await t.deps.db('portals').insert({
      member_id: 'member-a',
      domain: 'a.bitrix24.com',
      status: 'installed',
      events_bound: '["ONCRMDEALADD","ONCRMDEALUPDATE"]',
      updated_at: t.clock.now().getTime(),
    });
  });
  afterAll(async () => {
    await t.close();
  });

  it('warns of a step whose channel the server has not set up, and imports the map', async () => {
    const r = await runCliIn(t, ['rules', 'import', samplePath, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      'warning: rule "Paid deal: invoice, shipment, SMS", step 3: SMS is not set up on this server (SMS_PROVIDER), so this step fails every time the rule runs; ask the app\'s operator to set it up, or remove the step\n',
    );
    // Control: set up, nothing to say.
    expect((await cli(t, ['rules', 'import', samplePath, '--dry-run'])).err).toBe('');
  });

  it('imports the sample as the default map and exports it back unchanged', async () => {
    const imported = await cli(t, ['rules', 'import', samplePath]);
    expect(imported).toMatchObject({ code: 0, out: 'imported 1 rule as the default map\n' });
    const exported = await cli(t, ['rules', 'export']);
    expect(exported.code).toBe(0);
    expect(JSON.parse(exported.out)).toEqual(JSON.parse(fs.readFileSync(samplePath, 'utf8')));
    expect((await effectiveMap(t.deps.db, 'member-a')).rules[0]?.name).toBe(
      'Paid deal: invoice, shipment, SMS',
    );
  });

  it('gives a portal its own map, which replaces the default for that portal only', async () => {
    const own = {
      rules: [
        { name: 'Own', on: ['ONCRMDEALADD'], actions: [{ type: 'sms', to: '1', text: 'x' }] },
      ],
    };
    const r = await cli(t, [
      'rules',
      'import',
      file('own.json', own),
      '--portal',
      'member-a',
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ ok: true, scope: 'member-a', rules: 1, warnings: [] });
    expect(await effectiveMapWithSource(t.deps.db, 'member-a')).toEqual({
      map: own,
      source: 'portal',
    });
    expect((await effectiveMapWithSource(t.deps.db, 'member-b')).source).toBe('default');
    expect(JSON.parse((await cli(t, ['rules', 'export', '--portal', 'member-a'])).out)).toEqual(
      own,
    );
    expect(JSON.parse((await cli(t, ['rules', 'export'])).out).rules[0].name).toBe(
      'Paid deal: invoice, shipment, SMS',
    );
  });

  it('--dry-run checks a map as an import would, says what it would change, and stores nothing', async () => {
    const stored = JSON.parse((await cli(t, ['rules', 'export'])).out) as {
      rules: Array<Record<string, unknown>>;
    };
    const paid = stored.rules[0]!;
    const next = {
      rules: [
        { ...paid, on: ['ONCRMDEALADD'] },
        { name: 'New one', on: ['ONCRMDEALADD'], actions: [{ type: 'sms', to: '1', text: 'x' }] },
      ],
    };
    const r = await cli(t, ['rules', 'import', file('next.json', next), '--dry-run']);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toBe(
      `${path.join(t.dir, 'next.json')} is a valid event map of 2 rules; nothing was stored (--dry-run).\n` +
        'Imported, it would replace the default map: rules added New one; removed none; changed Paid deal: invoice, shipment, SMS (a changed credential is not shown).\n',
    );
    // Nothing stored: the export is what it was.
    expect(JSON.parse((await cli(t, ['rules', 'export'])).out)).toEqual(stored);
    // An invalid map is refused as by an import (exit 1), and --json says what would change.
    const bad = await cli(t, [
      'rules',
      'import',
      file('bad.json', { rules: [{ name: 'x' }] }),
      '--dry-run',
    ]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/is not a valid event map/);
    const asJson = await cli(t, [
      'rules',
      'import',
      file('empty.json', { rules: [] }),
      '--dry-run',
      '--json',
    ]);
    expect(JSON.parse(asJson.out)).toEqual({
      ok: true,
      dryRun: true,
      scope: 'default',
      rules: 0,
      added: [],
      removed: ['Paid deal: invoice, shipment, SMS'],
      changed: [],
      warnings: [],
    });
    expect(JSON.parse((await cli(t, ['rules', 'export'])).out)).toEqual(stored);
    expect((await cli(t, ['rules', 'export', '--dry-run'])).code).toBe(2);
  });

  it('refuses an invalid map, printing every problem with its JSON path, and keeps the old one', async () => {
    const bad = {
      rules: [
        {
          name: 'Bad',
          on: ['ONCRMDEALUPDATE'],
          actions: [{ type: 'http', method: 'POST', url: 5 }, { type: 'fax' }],
        },
      ],
    };
    const r = await cli(t, ['rules', 'import', file('bad.json', bad)]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain('is not a valid event map (2 problems)');
    expect(r.err).toContain('$.rules[0].actions[0].url: expected string, got number 5');
    expect(r.err).toContain('$.rules[0].actions[1].type: expected type to be one of');
    expect(JSON.parse((await cli(t, ['rules', 'export'])).out).rules[0].name).toBe(
      'Paid deal: invoice, shipment, SMS',
    );
    const j = await cli(t, ['rules', 'import', file('bad.json', bad), '--json']);
    expect(j.code).toBe(1);
    expect(JSON.parse(j.out).errors).toHaveLength(2);
    expect(j.err.trim().split('\n')).toHaveLength(1);
  });

  it('exits 1 with a reason for a missing or non-JSON file', async () => {
    const missing = await cli(t, ['rules', 'import', path.join(t.dir, 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot read .*nope\.json: ENOENT/);
    const notJson = await cli(t, ['rules', 'import', file('x.json', '{"rules": [')]);
    expect(notJson.code).toBe(1);
    expect(notJson.err).toContain('is not JSON');
  });

  it('prints map warnings on stderr and still imports', async () => {
    const loop = {
      rules: [
        {
          name: 'Touch',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            {
              type: 'bitrix',
              method: 'crm.deal.update',
              params: { id: '{{deal.ID}}', fields: { COMMENTS: 'x' } },
            },
          ],
        },
        { name: 'Leads', on: ['ONCRMLEADADD'], actions: [{ type: 'sms', to: '1', text: 'x' }] },
      ],
    };
    const r = await cli(t, ['rules', 'import', file('loop.json', loop), '--portal', 'member-a']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(
      /^warning: rule "Touch" listens to ONCRMDEALUPDATE and its step crm\.deal\.update can trigger/m,
    );
    expect(r.err).toMatch(
      /^warning: rule "Leads" listens to ONCRMLEADADD, which is not subscribed \(Subscriptions\)/m,
    );
  });

  it('exits 2 on bad usage', async () => {
    for (const argv of [
      ['rules'],
      ['rules', 'frob'],
      ['rules', 'import'],
      ['rules', 'import', samplePath, '--portal', 'no-such-portal'],
      ['rules', 'export', '--portal', 'no-such-portal'],
    ]) {
      const r = await cli(t, argv);
      expect([argv, r.code]).toEqual([argv, 2]);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });
});
