import type { EventMap } from '../../../server/rules/model.js';

/**
 * One rule with one `http` step: every update of a deal in WON posts it to the target. Each
 * event runs the step once, under its own Idempotency-Key, so the target's count by key shows
 * a step delivered twice.
 */
export function wonToTarget(url: string, extraSteps: EventMap['rules'][number]['actions'] = []) {
  const map: EventMap = {
    rules: [
      {
        name: 'Won deal to accounting',
        on: ['ONCRMDEALUPDATE'],
        when: [{ field: 'STAGE_ID', equals: 'WON' }],
        actions: [
          {
            type: 'http',
            name: 'invoice',
            method: 'POST',
            url: `${url}/invoices`,
            body: { dealId: '{{deal.ID}}' },
          },
          ...extraSteps,
        ],
      },
    ],
  };
  return map;
}
