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

autocannon(
  {
    url: opts.url,
    connections: opts.connections,
    duration: opts.durationSec,
    pipelining: 1,
    ...(opts.newConnectionPerRequest ? { reconnectRate: 1 } : {}),
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
