import { randomBytes } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { createSecretBox } from '../../server/lib/crypto.js';
import type { EventMap } from '../../server/rules/model.js';
import { maskMap, sealMap } from '../../server/rules/secret-fields.js';

/**
 * A credential a portal's map keeps from the operator's default map goes only with the
 * request the default map sends: when that request reads an earlier step's answer, the
 * earlier steps are part of it (server/rules/README.md).
 */
describe("the default map's credentials in a step that reads an earlier step", () => {
  const box = createSecretBox(randomBytes(32));
  const envNames = { has: () => false };
  const defaults = (body: unknown): EventMap => {
    const sealed = sealMap(
      {
        rules: [
          {
            name: 'Won',
            on: ['ONCRMDEALUPDATE'],
            actions: [
              { type: 'http', name: 'lookup', method: 'GET', url: 'https://data.example/x' },
              {
                type: 'http',
                name: 'erp',
                method: 'POST',
                url: 'https://erp.example/orders',
                headers: { Authorization: 'Bearer operator-token-123456' },
                body,
              },
            ],
          },
        ],
      },
      { box, envNames },
    );
    if (!sealed.ok) throw new Error(JSON.stringify(sealed.errors));
    return sealed.map;
  };
  const portalSaves = (def: EventMap, change: (m: EventMap) => void) => {
    const shown = maskMap(def, box);
    change(shown);
    return sealMap(shown, { box, envNames, previous: def, previousIsDefault: true });
  };
  const lookupAt = (url: string) => (m: EventMap) => {
    (m.rules[0]!.actions[0] as { url: string }).url = url;
  };

  it('refuses it when an earlier step it reads now asks another server', () => {
    const def = defaults({ order: '{{steps.lookup.response.order}}' });
    expect(portalSaves(def, () => undefined).ok).toBe(true); // control: unchanged
    const moved = portalSaves(def, lookupAt('https://portal-owner.example/x'));
    expect(moved.ok).toBe(false);
  });

  it('keeps it when the step reads no earlier step, whatever those do', () => {
    const def = defaults({ order: '{{deal.ID}}' });
    expect(portalSaves(def, lookupAt('https://portal-owner.example/x')).ok).toBe(true);
  });
});
