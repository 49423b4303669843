import { describe, expect, it } from '@jest/globals';
import { upperFieldName } from '../../server/rules/fields.js';
import { camelKey } from '../emulator/item-store.js';

/**
 * b24restdocs api-reference/crm/universal/index.md, "Field Naming Conventions": the table of
 * UPPER_CASE names and the camelCase names crm.item gives them.
 */
const DOC_TABLE: Array<[string, string]> = [
  ['ASSIGNED_BY_ID', 'assignedById'],
  ['UF_CRM_10_5186744711', 'ufCrm10_5186744711'],
  ['UF_CRM_10_DIGIT', 'ufCrm10Digit'],
  ['UF_CRM_10_DIGIT10', 'ufCrm_10_DIGIT10'],
  ['UF_CRM_3_DIGIT', 'ufCrm3Digit'],
  ['UF_CRM_3_1747309727', 'ufCrm3_1747309727'],
  ['UF_CRM_3_DIGIT10', 'ufCrm_3_DIGIT10'],
  ['UF_CRM_3_DIGIT_10', 'ufCrm_3_DIGIT_10'],
  ['UF_CRM_1747309879', 'ufCrm_1747309879'],
];

describe('field names in both namings', () => {
  it.each(DOC_TABLE)('the app reads %s back from %s', (upper, camel) => {
    expect(upperFieldName(camel)).toBe(upper);
    expect(upperFieldName(upper)).toBe(upper);
  });

  it.each(DOC_TABLE)('the emulated portal names %s as %s', (upper, camel) => {
    expect(camelKey(upper)).toBe(camel);
    expect(camelKey(camel)).toBe(camel);
  });

  it('keeps the plain fields the rules compare', () => {
    expect(upperFieldName('stageId')).toBe('STAGE_ID');
    expect(upperFieldName('categoryId')).toBe('CATEGORY_ID');
    expect(upperFieldName('STAGE_ID')).toBe('STAGE_ID');
  });
});
