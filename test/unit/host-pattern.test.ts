import { describe, expect, it } from '@jest/globals';
import { parseHostPattern } from '../../server/lib/host-pattern.js';

describe('host patterns', () => {
  it('matches subdomains of a wildcard but not the bare domain or look-alikes', () => {
    const p = parseHostPattern('*.bitrix24.com');
    expect(p.matches('acme.bitrix24.com')).toBe(true);
    expect(p.matches('a.b.bitrix24.com')).toBe(true);
    expect(p.matches('bitrix24.com')).toBe(false);
    expect(p.matches('evilbitrix24.com')).toBe(false);
    expect(p.matches('acme.bitrix24.com.evil.org')).toBe(false);
  });

  it('treats a pattern without a port as the default port only', () => {
    const p = parseHostPattern('crm.example.org');
    expect(p.matches('crm.example.org')).toBe(true);
    expect(p.matches('CRM.example.org')).toBe(true);
    expect(p.matches('crm.example.org:8443')).toBe(false);
  });

  it('matches any port with :*', () => {
    const p = parseHostPattern('127.0.0.1:*');
    expect(p.matches('127.0.0.1:4321')).toBe(true);
    expect(p.matches('127.0.0.1')).toBe(true);
    expect(p.matches('127.0.0.2:4321')).toBe(false);
  });

  it('rejects values that smuggle a path or credentials', () => {
    const p = parseHostPattern('*.bitrix24.com');
    expect(p.matches('evil.org/acme.bitrix24.com')).toBe(false);
    expect(p.matches('user@acme.bitrix24.com')).toBe(false);
    expect(() => parseHostPattern('https://x.org/')).toThrow(/not a host pattern/);
  });
});
