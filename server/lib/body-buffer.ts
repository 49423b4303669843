import type { NextFunction, Request, Response } from 'express';

/**
 * A request body read so far, held in about its own size. Each chunk of a request is a view
 * of one socket read with its own buffer objects, a few hundred bytes however small the
 * read: a body sent one byte per packet, kept as chunks, held some 200 times its size
 * (a BODY_LIMIT body, about 50 MB). The first chunk is kept as it came (the usual delivery
 * is one); later ones are copied into one buffer that doubles as it fills.
 */
export class BodyBuffer {
  private buf: Buffer | undefined;
  private owned = false;
  size = 0;

  append(chunk: Buffer, limit: number): void {
    if (this.buf === undefined) {
      this.buf = chunk;
      this.size = chunk.length;
      return;
    }
    const need = this.size + chunk.length;
    if (!this.owned || need > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.min(limit, Math.max(need, this.size * 2, 16_384)));
      this.buf.copy(next, 0, 0, this.size);
      this.buf = next;
      this.owned = true;
    }
    chunk.copy(this.buf, this.size);
    this.size = need;
  }

  clear(): void {
    this.buf = undefined;
    this.owned = false;
    this.size = 0;
  }

  text(): string {
    return this.buf ? this.buf.toString('utf8', 0, this.size) : '';
  }
}

/**
 * `express.text` for a form body, held as it arrives in a BodyBuffer: raw-body (under
 * express.text) keeps every chunk, a few hundred bytes each however small, so a body sent a
 * byte at a time to an unauthenticated route (install, frame entry) held some 200 times its
 * size. Sets `req.body` to the text for the given content type; past `limit` bytes answers
 * 413 through `next` (status 413, as express.text does) and reads the rest away.
 */
export function formText(opts: { type: string; limit: number }) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== opts.type || req.method === 'GET' || req.method === 'HEAD') {
      next();
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > opts.limit) {
      req.resume();
      next(tooLarge());
      return;
    }
    const body = new BodyBuffer();
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      if (body.size + chunk.length > opts.limit) {
        failed = true;
        body.clear();
        next(tooLarge());
        return;
      }
      body.append(chunk, opts.limit);
    });
    req.on('end', () => {
      if (failed) return;
      req.body = body.text();
      next();
    });
    req.on('error', (e) => {
      if (failed) return;
      failed = true;
      next(e);
    });
  };
}

const tooLarge = () =>
  Object.assign(new Error('request entity too large'), {
    status: 413,
    statusCode: 413,
    expose: true,
    type: 'entity.too.large',
  });
