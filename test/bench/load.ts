import http from 'node:http';
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

if (opts.newConnectionPerRequest) await newConnectionLoad();
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
