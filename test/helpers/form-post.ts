import http from 'node:http';

/** Posts a form body over `agent` (keep-alive, for load); resolves with the status code. */
export function postForm(url: string | URL, body: string, agent: http.Agent): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
