import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../server/lib/logger.js';

/** A real pino logger whose JSON lines are kept for assertions (and secret scans). */
export function createCollectingLogger(level = 'debug'): {
  logger: Logger;
  lines: string[];
  text(): string;
} {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger(level, stream), lines, text: () => lines.join('\n') };
}
