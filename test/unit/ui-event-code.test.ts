import { describe, expect, it } from '@jest/globals';
import { eventCode } from '../../server/ui/context.js';

describe('event names in narrow cells', () => {
  it('may wrap between their words, never inside one', () => {
    expect(eventCode('ONCRMDEALUPDATE')).toBe('ONCRM<wbr>DEAL<wbr>UPDATE');
    expect(eventCode('ONCRMDYNAMICITEMADD_128')).toBe('ONCRM<wbr>DYNAMICITEM<wbr>ADD_128');
    expect(eventCode('ONAPPINSTALL')).toBe('ON<wbr>APPINSTALL');
    expect(eventCode('ONTASKDELETE')).toBe('ON<wbr>TASK<wbr>DELETE');
  });

  it('escapes whatever else a stored name holds', () => {
    expect(eventCode('<img src=x onerror=alert(1)>')).toBe('&lt;img src=x onerror=alert(1)&gt;');
    expect(eventCode('"ONX\'&')).toBe('&#34;ONX&#39;&amp;');
  });
});
