import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';

/** WCAG 2.x relative luminance of `#rgb` / `#rrggbb`. */
function luminance(hex: string): number {
  let h = hex.slice(1);
  if (h.length === 3) h = [...h].map((c) => c + c).join('');
  const [r, g, b] = [0, 2, 4].map((i) => {
    const c = parseInt(h.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

/** https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio */
export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

interface Block {
  selector: string;
  color?: string;
  background?: string;
}

function blocks(css: string): Block[] {
  const out: Block[] = [];
  for (const m of css.replace(/\/\*[\s\S]*?\*\//g, '').matchAll(/([^{}]+)\{([^{}]*)\}/g)) {
    const decl = (name: string) =>
      new RegExp(`(?:^|;)\\s*${name}\\s*:\\s*(#[0-9a-f]{3,6})\\b`, 'i').exec(m[2]!)?.[1];
    out.push({
      selector: m[1]!.trim().replace(/\s+/g, ' '),
      color: decl('color'),
      background: decl('background(?:-color)?'),
    });
  }
  return out;
}

describe('the frame stylesheet meets WCAG AA contrast (4.5:1 for text)', () => {
  const css = fs.readFileSync(path.join(projectRoot(), 'placement', 'app.css'), 'utf8');
  const all = blocks(css);
  const body = all.find((b) => b.selector === 'body');
  const page = body?.background ?? '#fff';
  const text = body?.color ?? '#000';
  /** Surfaces whose text inherits its colour: the page and every block with only a background. */
  const surfaces = [page, ...all.filter((b) => b.background && !b.color).map((b) => b.background!)];

  it('reads the colours it checks (control)', () => {
    expect(all.filter((b) => b.color).length).toBeGreaterThan(8);
    expect(surfaces.length).toBeGreaterThan(4);
    expect(contrast('#80868e', '#fff')).toBeLessThan(4.5);
  });

  it('has every text colour readable on its own background or on every surface', () => {
    const failures: string[] = [];
    const check = (selector: string, fg: string, bg: string) => {
      const r = contrast(fg, bg);
      if (r < 4.5) failures.push(`${selector}: ${fg} on ${bg} is ${r.toFixed(2)}:1`);
    };
    for (const b of all) {
      if (b.color && b.background) check(b.selector, b.color, b.background);
      else if (b.color) for (const s of surfaces) check(b.selector, b.color, s);
      else if (b.background) check(`${b.selector} (inherited text)`, text, b.background);
    }
    expect(failures).toEqual([]);
  });
});
