/** A REST answer of the emulated portal: the status and the parsed body. */
export interface RestAnswer {
  status: number;
  json: Record<string, unknown> & {
    result?: unknown;
    error?: string;
    error_description?: string;
    total?: number;
  };
}

/**
 * Calls `method` on a portal's REST endpoint (`client_endpoint`) as an OAuth app does: POST
 * with a JSON body carrying `auth` (DOCS:settings/how-to-call-rest-api/general-principles.md).
 */
export async function callRest(
  endpoint: string,
  method: string,
  params: object,
  auth: string,
): Promise<RestAnswer> {
  const res = await fetch(`${endpoint}${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...params, auth }),
  });
  return { status: res.status, json: (await res.json()) as RestAnswer['json'] };
}
