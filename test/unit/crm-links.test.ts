import { describe, expect, it } from '@jest/globals';
import { crmCardPath, sliderPath } from '../../server/ui/crm-links.js';

/**
 * BX24.openPath opens only paths under the prefixes its page lists (b24restdocs
 * sdk/bx24-js-sdk/additional-functions/bx24-open-path.md); any other answers
 * PATH_NOT_AVAILABLE and opens nothing, so such a card stays a plain link. A quote's card is
 * at /crm/type/7/details/ID/ (CORE crm lib/Service/Router/Page/ItemDetails/QuoteDetailsPage.php).
 */
describe('links to a record’s card', () => {
  it('gives the slider the paths it opens, and leaves the others plain links', () => {
    expect(sliderPath('deal', '5')).toBe('/crm/deal/details/5/');
    expect(sliderPath('contact', '7')).toBe('/crm/contact/details/7/');
    expect(sliderPath('dynamic:128', '3')).toBe('/crm/type/128/details/3/');
    expect(sliderPath('task', '9')).toBe('/company/personal/user/0/tasks/task/view/9/');
    // A quote's card has the smart-process route on every portal (there is no
    // /crm/quote/details/: the link led to a missing page), so the slider opens it too.
    expect(crmCardPath('quote', '4')).toBe('/crm/type/7/details/4/');
    expect(sliderPath('quote', '4')).toBe('/crm/type/7/details/4/');
    expect(sliderPath('dynamic:31', '2')).toBe('/crm/type/31/details/2/');
    expect(sliderPath('activity', '4')).toBeUndefined();
    expect(sliderPath('deal', '4x')).toBeUndefined();
  });
});
