import type { Deps } from '../deps.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import type { PortalRow } from '../../db/stores/portals.js';
import type { WatchedType } from './watched.js';

/**
 * The list page Bitrix24 returns
 * (https://apidocs.bitrix24.com/settings/how-to-call-rest-api/list-methods-pecularities.html).
 */
export const PAGE = 50;

/** `2026-11-27T10:00:00+00:00`: what Bitrix24 date filters take (no milliseconds). */
export function bitrixTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', '+00:00');
}

/** A record as listed, with its change and creation times. */
export interface Listed {
  id: string;
  record: Record<string, unknown>;
  /** ms of the last change, NaN when the portal did not say. */
  modified: number;
  created: number;
}

/** One page of a type's records changed after `since`, by ID after `afterId` (fast paging). */
export async function listPage(
  deps: Pick<Deps, 'bitrix'>,
  portal: PortalRow,
  w: WatchedType,
  since: number,
  afterId: number,
): Promise<Listed[]> {
  const dynamic = /^dynamic:(\d+)$/.exec(w.type);
  if (dynamic) {
    // crm.item.list: camelCase fields, `{items}` (bitrix24/b24restdocs
    // api-reference/crm/universal/crm-item-list.md). `start: -1` skips the count here too: the
    // core's D7 REST layer (rest lib/engine/restmanager.php, DONT_CALCULATE_COUNT) then answers
    // without `total` and `next`, and paging goes on by `>id`.
    const answer = await deps.bitrix.call<{ items?: Array<Record<string, unknown>> }>(
      portal,
      'crm.item.list',
      {
        entityTypeId: Number(dynamic[1]),
        filter: { '>=updatedTime': bitrixTime(since), '>id': afterId },
        order: { id: 'ASC' },
        select: ['*', ...w.select],
        start: -1,
      },
    );
    return (Array.isArray(answer?.items) ? answer.items : []).map((r) => ({
      id: String(r.id),
      record: r,
      modified: Date.parse(String(r.updatedTime ?? '')),
      created: Date.parse(String(r.createdTime ?? '')),
    }));
  }
  // `start=-1` skips the count; paging is by `>ID` on the last seen id
  // (https://apidocs.bitrix24.com/settings/performance/huge-data.html).
  // DATE_MODIFY has whole seconds: `>=` the gap's first second misses nothing of it.
  const rows = await deps.bitrix.call<Array<Record<string, unknown>>>(
    portal,
    `crm.${w.type}.list`,
    {
      filter: { '>=DATE_MODIFY': bitrixTime(since), '>ID': afterId },
      order: { ID: 'ASC' },
      select: [...new Set(['ID', 'DATE_CREATE', 'DATE_MODIFY', '*', 'UF_*', ...w.select])],
      start: -1,
    },
  );
  return (Array.isArray(rows) ? rows : []).map((r) => ({
    id: String(r.ID),
    record: r,
    modified: Date.parse(String(r.DATE_MODIFY ?? '')),
    created: Date.parse(String(r.DATE_CREATE ?? '')),
  }));
}

/**
 * A page again after a passing failure (rate limit, 5xx, network): the CLI's sweep shares
 * the portal's budget with the running server, so a QUERY_LIMIT_EXCEEDED can happen.
 */
export async function withRetries<T>(f: () => Promise<T>, attempts = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= attempts || !isBitrixApiError(e) || !e.retryable) throw e;
      const wait = (e.retryAfterMs ?? 0) || 1000 * 2 ** (i - 1);
      await new Promise((r) => setTimeout(r, Math.min(wait, 30_000)));
    }
  }
}
