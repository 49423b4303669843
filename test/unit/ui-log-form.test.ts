import { describe, expect, it } from '@jest/globals';
import { readLogForm } from '../../server/ui/filters.js';

describe("the log's record-type filter", () => {
  it('keeps every record type the intake stores, a smart process without its type id too', () => {
    // server/intake/entity.ts stores `dynamic` when a delivery names no ENTITY_TYPE_ID.
    for (const etype of [
      'deal',
      'lead',
      'contact',
      'company',
      'quote',
      'task',
      'activity',
      'invoice',
      'dynamic:128',
      'dynamic',
    ]) {
      expect(readLogForm({ etype }).etype).toBe(etype);
    }
    expect(readLogForm({ etype: 'DYNAMIC:130' }).etype).toBe('dynamic:130');
  });

  it('drops what no record is stored as', () => {
    for (const etype of ['dynamic:', 'dynamic:x', 'dynamic:12345678901', 'deals', "deal' or 1=1"]) {
      expect(readLogForm({ etype }).etype).toBe('');
    }
  });
});
