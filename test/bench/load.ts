import http from 'node:http';
import net from 'node:net';
import autocannon from 'autocannon';

/**
 * The load generator, run as its own process so it does not share a CPU budget with the
 * server under test. Usage: node load.js '<json options>'; prints one JSON line of results.
 */
interface LoadOptions {
  url: string;
  connections: number;
  durationSec: number;
  /** true: a new TCP connection for every request. */
  newConnectionPerRequest: boolean;
  /** Body template; `__ID__` is replaced by a distinct number per request. */
  body: string;
  contentType: string;
  /**
   * Keep-alive load: `lean` (default), a client on bare sockets that sends each request as
   * one prepared write and reads only the status line and Content-Length of the answer; or
   * `autocannon`, whose per-request CPU is several times larger (test/bench/README.md#intake).
   */
  client?: 'lean' | 'autocannon';
}

const opts = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
let seq = Math.floor(Math.random() * 1e6) * 1000;

function report(r: {
  requests: number;
  durationSec: number;
  latencies: number[];
  non2xx: number;
  errors: number;
  timeouts: number;
}) {
  const sorted = [...r.latencies].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
  process.stdout.write(
    JSON.stringify({
      requests: r.requests,
      rps: Math.round(r.requests / r.durationSec),
      p50: Math.round(q(0.5)),
      p99: Math.round(q(0.99)),
      non2xx: r.non2xx + r.errors + r.timeouts,
      errors: r.errors,
      timeouts: r.timeouts,
    }) + '\n',
  );
}

/** A new TCP connection for every request (autocannon's reconnectRate 1 sends nothing). */
async function newConnectionLoad(): Promise<void> {
  const url = new URL(opts.url);
  const end = Date.now() + opts.durationSec * 1000;
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      seq++;
      const body = opts.body.replaceAll('__ID__', String(seq));
      const t0 = performance.now();
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          agent: false,
          headers: {
            'content-type': opts.contentType,
            'content-length': Buffer.byteLength(body),
            connection: 'close',
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            latencies.push(performance.now() - t0);
            if (res.statusCode !== 200) non2xx++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  await Promise.all(
    Array.from({ length: opts.connections }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  report({
    requests: latencies.length,
    durationSec: opts.durationSec,
    latencies,
    non2xx,
    errors,
    timeouts: 0,
  });
}

const LENGTH_HEADERS = ['\r\ncontent-length:', '\r\nContent-Length:'];

/** The Content-Length of the answer whose head ends at `headEnd`, or -1 without one. */
function contentLength(buf: Buffer, headEnd: number): number {
  for (const name of LENGTH_HEADERS) {
    const at = buf.indexOf(name, 0, 'latin1');
    if (at === -1 || at > headEnd) continue;
    let i = at + name.length;
    while (buf[i] === 0x20) i++;
    let n = 0;
    const from = i;
    for (; buf[i]! >= 0x30 && buf[i]! <= 0x39; i++) n = n * 10 + buf[i]! - 0x30;
    return i > from ? n : -1;
  }
  return -1;
}

/**
 * Keep-alive load on bare sockets: each connection sends a request, waits for its whole
 * answer (status line, headers, a Content-Length body), then sends the next, until the
 * duration is over. An answer without Content-Length, or a connection the server closes,
 * counts as an error (the servers measured here answer with a length and keep the
 * connection open).
 */
async function leanKeepAliveLoad(): Promise<void> {
  const url = new URL(opts.url);
  const head =
    `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
    `Content-Type: ${opts.contentType}\r\nContent-Length: `;
  const parts = opts.body.split('__ID__');
  const ascii = !/[^\x00-\x7f]/.test(opts.body);
  const started = Date.now();
  const end = started + opts.durationSec * 1000;
  const latencies: number[] = [];
  let non2xx = 0;
  let errors = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect({ host: url.hostname, port: Number(url.port) });
      socket.setNoDelay(true);
      let pending: Buffer | undefined;
      let t0 = 0;
      const send = () => {
        seq++;
        const body = parts.join(String(seq));
        t0 = performance.now();
        const length = ascii ? body.length : Buffer.byteLength(body);
        socket.write(`${head}${length}\r\n\r\n${body}`, ascii ? 'latin1' : 'utf8');
      };
      let done = false;
      const finish = () => {
        done = true;
        socket.destroy();
        resolve();
      };
      // An error, a connection closed by the server, an answer without a length.
      const fail = () => {
        if (done) return;
        errors++;
        finish();
      };
      socket.on('connect', send);
      socket.on('data', (chunk: Buffer) => {
        let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
        for (;;) {
          const headEnd = buf.indexOf('\r\n\r\n');
          if (headEnd === -1) break;
          const length = contentLength(buf, headEnd);
          if (length < 0) {
            fail();
            return;
          }
          const total = headEnd + 4 + length;
          if (buf.length < total) break;
          latencies.push(performance.now() - t0);
          // "HTTP/1.1 200": bytes 9–11.
          if (buf[9] !== 0x32 || buf[10] !== 0x30 || buf[11] !== 0x30) non2xx++;
          buf = buf.subarray(total);
          if (Date.now() >= end) {
            finish();
            return;
          }
          send();
        }
        pending = buf.length > 0 ? buf : undefined;
      });
      socket.on('error', fail);
      socket.on('close', fail);
    });
  await Promise.all(Array.from({ length: opts.connections }, one));
  report({
    requests: latencies.length,
    durationSec: (Date.now() - started) / 1000,
    latencies,
    non2xx,
    errors,
    timeouts: 0,
  });
}

if (opts.newConnectionPerRequest) await newConnectionLoad();
else if (opts.client !== 'autocannon') await leanKeepAliveLoad();
else
  autocannon(
    {
      url: opts.url,
      connections: opts.connections,
      duration: opts.durationSec,
      pipelining: 1,
      requests: [
        {
          method: 'POST',
          headers: { 'content-type': opts.contentType },
          setupRequest: (req: autocannon.Request) => {
            seq++;
            return { ...req, body: opts.body.replaceAll('__ID__', String(seq)) };
          },
        },
      ],
    },
    (err: Error | null, r: autocannon.Result) => {
      if (err) throw err;
      const non2xx = r.non2xx + r.errors + r.timeouts;
      process.stdout.write(
        JSON.stringify({
          requests: r.requests.total,
          rps: Math.round(r.requests.total / (r.duration || opts.durationSec)),
          p50: r.latency.p50,
          p99: r.latency.p99,
          non2xx,
          errors: r.errors,
          timeouts: r.timeouts,
        }) + '\n',
      );
    },
  );
