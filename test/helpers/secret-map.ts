/**
 * A rule map with one rule: a deal that becomes WON posts `{dealId}` through one http step
 * (`step` is merged into it: its name, url, headers, credentials).
 */
export function wonDealHttpMap(ruleName: string, step: Record<string, unknown>) {
  return {
    rules: [
      {
        name: ruleName,
        on: ['ONCRMDEALUPDATE'],
        when: [{ field: 'STAGE_ID', becomes: 'WON' }],
        actions: [{ type: 'http', method: 'POST', body: { dealId: '{{deal.ID}}' }, ...step }],
      },
    ],
  };
}

/**
 * A map whose one http step holds every kind of credential: a signing `secret`,
 * an `Authorization` header in clear, a header read from `$env`, and a plain Content-Type.
 */
export function secretStepMap(o: {
  url: string;
  token: string;
  secret: string;
  envName: string;
  extra?: Record<string, unknown>;
}) {
  return wonDealHttpMap('Won deal: invoice', {
    name: 'invoice',
    url: o.url,
    headers: {
      Authorization: `Bearer ${o.token}`,
      'X-Erp-Key': { $env: o.envName },
      'Content-Type': 'application/json',
    },
    secret: o.secret,
    ...o.extra,
  });
}
