import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { effectiveMapWithSource } from '../../server/rules/map-store.js';
import { scopeOfEvent } from '../../server/bitrix/scopes.js';
import { loadManifest } from '../../server/manifest.js';
import { projectRoot } from '../../server/lib/project-root.js';
import { SUPPORTED_EVENTS } from '../../server/ui/supported-events.js';
import { runCliIn } from '../helpers/cli.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

// Scopes (https://apidocs.bitrix24.com/api-reference/events/event-bind.html): the portal refuses
// events and methods outside the app's scopes.

describe('scopes', () => {
  it('manifest.json grants the scope of every event the UI offers and of tasks.task.get', () => {
    const scopes = loadManifest(projectRoot()).scopes;
    for (const e of SUPPORTED_EVENTS) {
      const need = scopeOfEvent(e.name);
      if (need) expect([e.name, scopes.includes(need)]).toEqual([e.name, true]);
    }
    // The entity reader enriches task events with tasks.task.get.
    expect(scopes).toContain('task');
  });

  describe('on a portal whose app lacks the task scope', () => {
    let h: InstallHarness;
    let portal: Awaited<ReturnType<InstallHarness['addPortal']>>;
    beforeAll(async () => {
      h = await startInstallHarness({ B24_EVENTS: 'ONCRMDEALUPDATE,ONTASKADD' });
      ({ portal } = await installPortal(h, { scope: 'crm,placement,user_brief' }));
    });
    afterAll(async () => {
      await h.close();
    });

    it('the emulator refuses event.bind outside the scopes and methods outside them', async () => {
      const bind = portal.calls.find(
        (c) => c.inBatch && c.method === 'event.bind' && c.params['event'] === 'ONTASKADD',
      );
      expect(bind).toMatchObject({ status: 400, error: 'ERROR_EVENT_NOT_FOUND' });
      // Control: the CRM event in the same batch was bound.
      expect(portal.bindings.some((b) => b.event === 'ONCRMDEALUPDATE')).toBe(true);
      const row = await h.t.deps.db('portals').where({ member_id: portal.memberId }).first();
      await expect(
        h.t.deps.bitrix.call(row, 'tasks.task.get', { taskId: 1 }),
      ).rejects.toMatchObject({
        bitrixCode: 'insufficient_scope',
        httpStatus: 401,
        retryable: false,
      });
      await expect(h.t.deps.bitrix.call(row, 'crm.deal.list', {})).resolves.toBeDefined();
    });

    it('rules import refuses a rule on a task event for that portal, with the reason', async () => {
      const file = path.join(h.t.dir, 'tasks.json');
      const map = {
        rules: [
          { name: 'Deal', on: ['ONCRMDEALUPDATE'], actions: [{ type: 'sms', to: '1', text: 'x' }] },
          {
            name: 'Task',
            on: ['ONTASKADD'],
            actions: [{ type: 'sms', to: '1', text: '{{task.TITLE}}' }],
          },
        ],
      };
      fs.writeFileSync(file, JSON.stringify(map));
      const r = await runCliIn(h.t, ['rules', 'import', file, '--portal', portal.memberId]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(
        '$.rules[1].on[0]: ONTASKADD needs the Bitrix24 scope "task", which the app does not have (its scopes: crm, placement, user_brief)',
      );
      expect(r.err).toContain(
        '$.rules[1].actions[0]: reading task records needs the Bitrix24 scope "task"',
      );
      expect((await effectiveMapWithSource(h.t.deps.db, portal.memberId)).source).not.toBe(
        'portal',
      );
      // Control: without the task rule the same file is accepted.
      fs.writeFileSync(file, JSON.stringify({ rules: [map.rules[0]] }));
      const ok = await runCliIn(h.t, ['rules', 'import', file, '--portal', portal.memberId]);
      expect(ok.code).toBe(0);
    });
  });

  describe('the default map', () => {
    let t: TestDeps;
    beforeAll(async () => {
      t = await createTestDeps();
    });
    afterAll(async () => {
      await t.close();
    });

    it('is checked against manifest.json: a bitrix step outside the scopes is refused', async () => {
      const file = path.join(t.dir, 'im.json');
      fs.writeFileSync(
        file,
        JSON.stringify({
          rules: [
            {
              name: 'Notify',
              on: ['ONTASKUPDATE'],
              actions: [{ type: 'bitrix', method: 'im.notify.system.add', params: { USER_ID: 1 } }],
            },
          ],
        }),
      );
      const r = await runCliIn(t, ['rules', 'import', file, '--json']);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.out)).toEqual({
        ok: false,
        errors: [
          {
            path: '$.rules[0].actions[0].method',
            message:
              'im.notify.system.add needs the Bitrix24 scope "im", which the app does not have (its scopes: crm, task, placement, user_brief)',
          },
        ],
      });
    });
  });
});
