import http from 'node:http';

/** Ceiling: a bare node:http server that reads the body and answers 200. */
const server = http.createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 11 });
    res.end('{"ok":true}');
  });
});
server.listen(0, '127.0.0.1', () => {
  const addr = server.address() as { port: number };
  process.stdout.write(`listening on http://127.0.0.1:${addr.port}\n`);
});
