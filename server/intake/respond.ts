import type http from 'node:http';

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

/** The intake's answer to a stored delivery. */
export const OK = '{"ok":true}';
/** The answer to an identical repeat: stored once, counted again. */
export const OK_DUPLICATE = '{"ok":true,"duplicate":true}';

/**
 * Seconds a sender should wait after a 503 (the database refused the write: locked beyond
 * the busy timeout, disk full). Bitrix24 itself does not re-send; other senders may.
 */
export const STORAGE_RETRY_AFTER_SECONDS = 5;

/** Answers with a JSON body, once: a second answer (a late 413, a failure after it) is dropped. */
export function send(
  res: http.ServerResponse,
  status: number,
  body: string,
  close = false,
  extra: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  const headers: Record<string, string | number> = {
    ...JSON_HEADERS,
    'content-length': Buffer.byteLength(body),
    ...extra,
  };
  if (close) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(body);
}
