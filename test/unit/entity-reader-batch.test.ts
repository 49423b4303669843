import { describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import type { Deps } from '../../server/deps.js';
import { ACTIVITY_BINDINGS, createEntityReader } from '../../server/processing/entity-reader.js';
import type { PortalRow } from '../../db/stores/portals.js';

/** The read-ahead's requests: one batch of at most 50 commands (server/processing/entity-reader.ts). */
describe('EntityReader.prefetch', () => {
  it('reads 50 activities ahead in one batch request, each with its bindings, the rest left for later', async () => {
    const batches: string[][] = [];
    const bitrix = {
      batch: async (_portal: PortalRow, cmds: Record<string, readonly [string, object]>) => {
        batches.push(Object.values(cmds).map(([m]) => m));
        const result: Record<string, unknown> = {};
        for (const [k, [m]] of Object.entries(cmds)) {
          result[k] =
            m === 'crm.activity.binding.list' ? [{ entityTypeId: 2, entityId: 1 }] : { ID: '1' };
        }
        return { result, errors: {} };
      },
      read: async () => {
        throw new Error('no single read expected');
      },
    };
    // maxEventId(db): db('events').max(...).first()
    const db = (() => ({ max: () => ({ first: async () => ({ m: 10 }) }) })) as unknown as Knex;
    const reader = createEntityReader({
      bitrix: bitrix as unknown as Deps['bitrix'],
      db,
      clock: { now: () => new Date() } as Deps['clock'],
    });
    const portal = { id: 1, member_id: 'm' } as PortalRow;
    const refs = Array.from({ length: 50 }, (_, i) => ({ type: 'activity', id: String(i + 1) }));
    await reader.prefetch(portal, refs, 5);
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(50);
    // The first activity's bindings came with it: its event's link needs no request of its own.
    expect(reader.cached(portal, ACTIVITY_BINDINGS, '1', 5)).toEqual({
      value: { bindings: [{ entityTypeId: 2, entityId: 1 }] },
    });
    expect(reader.cached(portal, 'activity', '25', 5)).toBeDefined();
    expect(reader.cached(portal, ACTIVITY_BINDINGS, '25', 5)).toBeDefined();
    expect(reader.cached(portal, 'activity', '26', 5)).toBeUndefined();
  });
});
