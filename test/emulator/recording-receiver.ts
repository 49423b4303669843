import { createServer, type IncomingHttpHeaders } from 'node:http';
import { closeServer, listen, readBody } from './http-util.js';

/** A local node:http endpoint that records what it receives: a stand-in event handler. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RecordingReceiver {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly requests: readonly ReceivedRequest[];
  /** Status every later request is answered with. @default 200 */
  setStatus(status: number): void;
  close(): Promise<void>;
}

export async function startRecordingReceiver(status = 200): Promise<RecordingReceiver> {
  const requests: ReceivedRequest[] = [];
  let answer = status;
  const server = createServer((req, res) => {
    readBody(req).then(
      (body) => {
        requests.push({
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body,
        });
        res.writeHead(answer, { 'Content-Type': 'text/plain' }).end(answer < 400 ? 'ok' : 'error');
      },
      () => res.destroy(),
    );
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setStatus(s) {
      answer = s;
    },
    close: () => closeServer(server),
  };
}

/** A URL on 127.0.0.1 where nothing listens (a port just released). */
export async function unusedLocalUrl(): Promise<string> {
  const server = createServer();
  const port = await listen(server);
  await closeServer(server);
  return `http://127.0.0.1:${port}`;
}
