import { describe, expect, it } from '@jest/globals';
import { crmCardPath, sliderPath } from '../../server/ui/crm-links.js';

/**
 * BX24.openPath opens only paths under the prefixes its page lists (b24restdocs
 * sdk/bx24-js-sdk/additional-functions/bx24-open-path.md); any other answers
 * PATH_NOT_AVAILABLE and opens nothing. The log's link to a quote's card had its click's
 * default prevented for openPath, so clicking it did nothing.
 */
describe('links to a record’s card', () => {
  it('gives the slider the paths it opens, and leaves the others plain links', () => {
    expect(sliderPath('deal', '5')).toBe('/crm/deal/details/5/');
    expect(sliderPath('contact', '7')).toBe('/crm/contact/details/7/');
    expect(sliderPath('dynamic:128', '3')).toBe('/crm/type/128/details/3/');
    expect(sliderPath('task', '9')).toBe('/company/personal/user/0/tasks/task/view/9/');
    // A quote has a card, linked as such, but not one the slider opens.
    expect(crmCardPath('quote', '4')).toBe('/crm/quote/details/4/');
    expect(sliderPath('quote', '4')).toBeUndefined();
    expect(sliderPath('activity', '4')).toBeUndefined();
    expect(sliderPath('deal', '4x')).toBeUndefined();
  });
});
