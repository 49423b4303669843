import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';
import { dryRun } from '../../server/rules/dry-run.js';
import { relatedToLoad, rootsUsed } from '../../server/rules/needs.js';
import { validateEventMap } from '../../server/rules/validate.js';

const loadSample = () => {
  const r = validateEventMap(
    JSON.parse(
      fs.readFileSync(path.join(projectRoot(), 'server/rules/samples/paid-deal.json'), 'utf8'),
    ),
  );
  if (!r.ok) throw new Error('sample map is invalid');
  return r.map;
};

describe('dryRun', () => {
  it('on a record chosen by hand, names the condition that fails even with the change taken as made', () => {
    const v = validateEventMap({
      rules: [
        {
          name: 'Won by courier',
          on: ['ONCRMDEALUPDATE'],
          when: [
            { field: 'STAGE_ID', becomes: 'WON' },
            { field: 'UF_CRM_DELIVERY', equals: '45' },
          ],
          actions: [{ type: 'http', method: 'POST', url: 'https://erp.example/won', body: {} }],
        },
      ],
    });
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    const input = {
      event: { name: 'ONCRMDEALUPDATE', entityType: 'deal', entityId: '3' },
      entity: { ID: '3', STAGE_ID: 'WON', UF_CRM_DELIVERY: '' },
      related: {},
      previous: { STAGE_ID: 'WON', UF_CRM_DELIVERY: '' },
    };
    const [r] = dryRun(v.map, input, { assumeChange: true });
    expect(r?.matched).toBe(false);
    // Before: "STAGE_ID was already "WON"", though the stage was not what kept it from matching.
    expect(r?.reason).toContain('UF_CRM_DELIVERY');
    expect(r?.reason).not.toContain('already');
    // Control: the delivery right, it matches as if just won.
    input.entity.UF_CRM_DELIVERY = '45';
    input.previous.UF_CRM_DELIVERY = '45';
    expect(dryRun(v.map, input, { assumeChange: true })[0]).toMatchObject({ matched: true });
  });

  it('shows what each step of a matching rule would send, step outputs left open', () => {
    const map = loadSample();
    const [result] = dryRun(map, {
      event: { name: 'ONCRMDEALUPDATE', entityType: 'deal', entityId: '42' },
      entity: { ID: '42', STAGE_ID: 'WON', OPPORTUNITY: '1500.00', CONTACT_ID: '7' },
      related: { contact: { ID: '7', PHONE: [{ VALUE: '+15550100', VALUE_TYPE: 'WORK' }] } },
      previous: { STAGE_ID: 'NEW' },
    });
    expect(result?.matched).toBe(true);
    expect(result?.steps?.map((s) => s.rendered)).toEqual([
      expect.objectContaining({ body: { dealId: '42', amount: '1500.00' } }),
      expect.objectContaining({ body: { dealId: '42' } }),
      { type: 'sms', name: 'sms', to: '+15550100', text: 'Payment received for order 42' },
      expect.objectContaining({
        params: {
          fields: {
            ENTITY_ID: '42',
            ENTITY_TYPE: 'deal',
            COMMENT: 'Invoice {{steps.invoice.response.id}} created',
          },
        },
      }),
    ]);
  });

  it('reports a step that cannot be rendered instead of failing the whole run', () => {
    const [result] = dryRun(loadSample(), {
      event: { name: 'ONCRMDEALUPDATE', entityType: 'deal' },
      entity: { ID: '42', STAGE_ID: 'WON' },
      previous: { STAGE_ID: 'NEW' },
    });
    expect(result?.steps?.[0]?.error).toBe(
      'template {{deal.OPPORTUNITY}}: deal has no OPPORTUNITY',
    );
    expect(result?.steps?.[2]?.error).toBe(
      'template {{contact.PHONE}}: contact is not available for this event',
    );
  });

  it('lists rules that do not match with the reason', () => {
    expect(
      dryRun(loadSample(), {
        event: { name: 'ONCRMDEALUPDATE', entityType: 'deal' },
        entity: { ID: '42', STAGE_ID: 'WON' },
        previous: { STAGE_ID: 'WON' },
      }),
    ).toEqual([
      {
        rule: 'Paid deal: invoice, shipment, SMS',
        matched: false,
        reason: 'STAGE_ID was already "WON"',
      },
    ]);
  });
});

describe('relatedToLoad', () => {
  it('asks for the contact only when a template or condition reads it', () => {
    const map = loadSample();
    expect(relatedToLoad(map.rules)).toEqual(['contact']);
    expect([...rootsUsed(map.rules)].sort()).toEqual(['contact', 'deal', 'entity', 'steps']);
    expect(
      relatedToLoad([
        {
          name: 'x',
          on: ['ONCRMDEALADD'],
          actions: [{ type: 'sms', to: '1', text: '{{deal.ID}}' }],
        },
      ]),
    ).toEqual([]);
    expect(
      relatedToLoad([
        {
          name: 'x',
          on: ['ONCRMDEALADD'],
          when: [{ field: 'company.INDUSTRY', equals: 'IT' }],
          actions: [{ type: 'sms', to: '1', text: 'x' }],
        },
      ]),
    ).toEqual(['company']);
  });
});
