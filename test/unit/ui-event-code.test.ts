import { describe, expect, it } from '@jest/globals';
import { dataBreaks, eventCode } from '../../server/ui/context.js';

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

describe('rule data values in narrow cells', () => {
  it('may wrap after a separator, never inside a word', () => {
    expect(dataBreaks('UF_CRM_17123_REGION')).toBe('UF_<wbr>CRM_<wbr>17123_<wbr>REGION');
    expect(dataBreaks('crm.timeline.comment.add')).toBe('crm.<wbr>timeline.<wbr>comment.<wbr>add');
    expect(dataBreaks('sales@example.com')).toBe('sales@<wbr>example.<wbr>com');
    expect(dataBreaks('WON')).toBe('WON');
    expect(dataBreaks('127.0.0.1:8080')).toBe('127.0.0.1:8080');
  });

  it('escapes the value and never breaks an entity', () => {
    expect(dataBreaks('<b>a_b</b>')).toBe('&lt;b&gt;a_<wbr>b&lt;/<wbr>b&gt;');
    expect(dataBreaks('"a&b\'')).toBe('&#34;a&amp;b&#39;');
  });
});
