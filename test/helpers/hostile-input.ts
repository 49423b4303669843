/** A seeded PRNG (mulberry32), so a failing generated input can be reproduced. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Hostile variants of a valid delivery body: truncated percent-encodings, deep and wide
 * bracket keys, prototype keys, wrong types, NUL bytes, invalid UTF-8, huge values, random
 * bytes and mutations of the valid body.
 */
export function hostileBodies(valid: string, count: number, seed = 42): Buffer[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const int = (n: number) => Math.floor(rnd() * n);
  const generators: Array<() => Buffer | string> = [
    () => valid.slice(0, int(valid.length)),
    () => valid.slice(0, int(valid.length)) + '%' + pick(['', 'E', 'E2', 'E2%8', 'ZZ', '%%']),
    () => valid.replace(/%5B/g, pick(['[', '%5b', '%5B%5B', ''])),
    () => valid + '&' + 'data' + '[x]'.repeat(1 + int(40)) + '=1',
    () => valid + '&' + Array.from({ length: 100 + int(1000) }, (_, i) => `k${i}=v`).join('&'),
    () =>
      valid +
      pick([
        '&__proto__[polluted]=1',
        '&constructor[prototype][x]=1',
        '&auth[__proto__][a]=1',
        '&data[__proto__]=x',
      ]),
    () =>
      valid.replace(
        'event=ONCRMDEALUPDATE',
        pick(['event[]=x', 'event[a]=b', 'event=', 'event=%00', 'event=ON%0ACRM']),
      ),
    () =>
      valid.replace(
        /auth%5Bmember_id%5D=[^&]*/,
        pick([
          'auth%5Bmember_id%5D%5B%5D=1',
          'auth%5Bmember_id%5D=',
          'auth%5Bmember_id%5D=%00%00',
          'auth%5Bmember_id%5D=' + 'x'.repeat(500),
        ]),
      ),
    () =>
      valid.replace(
        /auth%5Bapplication_token%5D=[^&]*/,
        pick([
          'auth%5Bapplication_token%5D%5Bx%5D=1',
          'auth%5Bapplication_token%5D=',
          'auth%5Bapplication_token%5D=' + '%FF'.repeat(40),
        ]),
      ),
    () =>
      valid.replace(
        /ts=\d+/,
        pick(['ts=-1', 'ts=1e99', 'ts[]=1', 'ts=99999999999999999999', 'ts=%00']),
      ),
    () =>
      valid.replace(
        /data%5BFIELDS%5D%5BID%5D=\d+/,
        pick([
          'data=1',
          'data[]=1',
          'data%5BFIELDS%5D=1',
          'data%5BFIELDS%5D%5BID%5D%5B%5D=1',
          'data%5BFIELDS%5D%5BID%5D=' + '9'.repeat(200),
        ]),
      ),
    () =>
      Buffer.concat([
        Buffer.from(valid.slice(0, int(valid.length))),
        Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28, 0xe2, 0x82]),
      ]),
    () => Buffer.from(Array.from({ length: int(2000) }, () => int(256))),
    () =>
      Array.from({ length: int(300) }, () =>
        pick(['&', '=', '[', ']', '%', 'a', '\u0000', '+', ';']),
      ).join(''),
    () => {
      const chars = valid.split('');
      for (let i = 0; i < 1 + int(10); i++)
        chars[int(chars.length)] = String.fromCharCode(int(128));
      return chars.join('');
    },
    () => 'event=ONCRMDEALUPDATE&' + 'a='.repeat(int(5000)),
    () => valid + '&auth[' + 'x'.repeat(int(3000)) + ']=1',
  ];
  return Array.from({ length: count }, () => {
    const v = pick(generators)();
    return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  });
}
