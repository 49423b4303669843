import { describe, expect, it } from '@jest/globals';
import { checkMap } from '../../server/rules/check-map.js';
import { describeStep } from '../../server/rules/describe.js';
import type { EventMap } from '../../server/rules/model.js';
import { maskUrlText, urlHasCredentials } from '../../server/rules/secret-fields.js';
import {
  parsePlaceholder,
  placeholders,
  renderTemplate,
  unclosedTemplates,
} from '../../server/rules/templates.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { mapWords } from '../../server/ui/i18n-map.js';

/**
 * Rule text is a stranger's: a portal admin saves it, and it is read on the main thread at
 * every save, view and event. Each of these inputs once made a regular expression backtrack
 * (templates.ts PLACEHOLDER cubic: 2,000 spaces after `{{` took 4 s, 8,000 took 120 s;
 * template-filters.ts FILTER and secret-fields.ts URL_SECRET_PARAM quadratic). At 100 KB
 * each, the old code would take from seconds to days; linear code takes milliseconds.
 */
const N = 100_000;
const hostile: Record<string, string> = {
  'unclosed {{ and spaces': '{{' + ' '.repeat(N),
  'unclosed {{ and spaces, then text': '{{' + ' '.repeat(N) + 'x',
  'unclosed {{ and tabs and text': '{{ ' + 'a \t'.repeat(N / 3),
  'many {{': '{{'.repeat(N / 2),
  'spaces inside a closed placeholder': '{{' + ' '.repeat(N) + 'deal.TITLE' + ' '.repeat(N) + '}}',
  'filter argument with spaces': '{{deal.TITLE | date:a' + ' '.repeat(N) + '!}}',
  'many filters': '{{deal.TITLE' + ' | upper'.repeat(N / 8) + '}}',
  'query name without =': 'https://a.example/?' + 'token'.repeat(N / 5),
  'many query names': 'https://a.example/?' + 'tokenx&'.repeat(N / 7),
  'a run of ?': 'https://a.example/' + '?'.repeat(N),
  'a run of a?': 'https://a.example/?' + 'a?'.repeat(N / 2),
  'long path': 'https://a.example/' + 'a1b2'.repeat(N / 4),
};

function timed(f: () => unknown): number {
  const t = performance.now();
  try {
    f();
  } catch {
    // refused is fine: what counts is how long it took to say so
  }
  return performance.now() - t;
}

const mapWith = (text: string): EventMap => ({
  rules: [
    {
      name: 'r',
      on: ['ONCRMDEALUPDATE'],
      when: [],
      actions: [
        { type: 'http', method: 'POST', url: 'https://a.example/x', body: { t: text } },
        { type: 'http', method: 'GET', url: text },
      ],
    },
  ],
});

describe('rule text is read in linear time', () => {
  for (const [name, text] of Object.entries(hostile)) {
    it(name, () => {
      const took = {
        validate: timed(() => validateEventMap(mapWith(text))),
        check: timed(() => checkMap(mapWith(text))),
        render: timed(() => renderTemplate({ t: text }, { deal: { TITLE: 'x' } })),
        placeholders: timed(() => placeholders({ t: text })),
        unclosed: timed(() => unclosedTemplates({ t: text })),
        parse: timed(() => parsePlaceholder(text.slice(2))),
        credentials: timed(() => urlHasCredentials(text)),
        mask: timed(() => maskUrlText(text)),
        describe: timed(() =>
          describeStep({ type: 'http', method: 'GET', url: text }, mapWords('en')),
        ),
      };
      // Generous: a busy CI machine, and 100 KB of text; the old code took seconds to days.
      expect(Object.entries(took).filter(([, ms]) => ms > 500)).toEqual([]);
    });
  }

  it('still reads what it read before', () => {
    expect(placeholders({ a: 'x {{ deal.TITLE | upper }} y {{contact.PHONE?}}' })).toEqual([
      'deal.TITLE | upper',
      'contact.PHONE?',
    ]);
    expect(unclosedTemplates({ a: 'ok {{deal.ID}} then {{ deal.TITLE' })).toEqual([
      '{{ deal.TITLE',
    ]);
    expect(renderTemplate('{{  deal.TITLE  }}', { deal: { TITLE: 'A' } })).toBe('A');
    expect(renderTemplate('n={{ deal.TITLE | upper }}!', { deal: { TITLE: 'a' } })).toBe('n=A!');
    expect(
      renderTemplate('{{ deal.DATE | date:DD.MM.YYYY HH:mm }}', {
        deal: { DATE: '2026-12-07T10:20:00+03:00' },
      }),
    ).toMatch(/^07\.12\.2026 \d\d:20$/);
    expect(urlHasCredentials('https://a.example/?id=1&api_key=abc')).toBe(true);
    expect(urlHasCredentials('https://a.example/?id=1&name=abc')).toBe(false);
    expect(maskUrlText('https://a.example/?x=a?token=S')).toBe(
      'https://a.example/?x=a?token=********',
    );
    expect(maskUrlText('https://a.example/?id=1&api_key=abc&sig=z#f')).toBe(
      'https://a.example/?id=1&api_key=********&sig=********#f',
    );
  });
});
