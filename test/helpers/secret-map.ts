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
  return {
    rules: [
      {
        name: 'Won deal: invoice',
        on: ['ONCRMDEALUPDATE'],
        when: [{ field: 'STAGE_ID', becomes: 'WON' }],
        actions: [
          {
            type: 'http',
            name: 'invoice',
            method: 'POST',
            url: o.url,
            headers: {
              Authorization: `Bearer ${o.token}`,
              'X-Erp-Key': { $env: o.envName },
              'Content-Type': 'application/json',
            },
            secret: o.secret,
            body: { dealId: '{{deal.ID}}' },
            ...o.extra,
          },
        ],
      },
    ],
  };
}
