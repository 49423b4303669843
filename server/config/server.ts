import path from 'node:path';
import type { EnvReader } from './reader.js';
import type { Config } from './types.js';

/** Where the server listens, its public URL, its data folder and its database. */
export function parseServer(
  r: EnvReader,
  cwd: string,
): Pick<Config, 'port' | 'host' | 'appUrl' | 'dataDir' | 'database'> {
  const { env } = r;
  const port = r.int('PORT', 3000, 0, 65535);
  const host = env.HOST?.trim() || '0.0.0.0';
  const appUrl = r.url('APP_URL', `http://localhost:${port}`) ?? `http://localhost:${port}`;
  const dataDir = path.resolve(cwd, env.DATA_DIR?.trim() || './data');

  let database: Config['database'] = {
    client: 'sqlite',
    filename: path.join(dataDir, 'b24hooks.sqlite'),
  };
  const dbUrl = env.DATABASE_URL?.trim();
  if (dbUrl) {
    if (/^postgres(ql)?:\/\//i.test(dbUrl)) {
      if (parsesAsPgUrl(dbUrl)) database = { client: 'pg', connectionString: dbUrl };
      else {
        r.problems.push(
          'DATABASE_URL is not a valid postgres:// URL (a port above 65535, or a character in ' +
            'the user or password that must be percent-encoded, such as / # ?)',
        );
      }
    } else if (/^sqlite:/i.test(dbUrl)) {
      const file = dbUrl.replace(/^sqlite:(\/\/)?/i, '');
      database = { client: 'sqlite', filename: file ? path.resolve(cwd, file) : database.filename };
    } else {
      r.problems.push(`DATABASE_URL must start with sqlite: or postgres://, got another scheme`);
    }
  }
  return { port, host, appUrl, dataDir, database };
}

/**
 * Whether node-postgres will parse it: pg-connection-string reads it with the WHATWG URL
 * parser (spaces encoded first, and once more with a stand-in host when the host is empty).
 * Caught here, a bad port or a `/` left unencoded in a password is one line at start-up; else it
 * was a TypeError's stack from deep inside pg at the first query. The URL itself is never
 * quoted back: it holds the password.
 */
function parsesAsPgUrl(url: string): boolean {
  // A connection string has no fragment: a `#` is an unencoded one in the password, which
  // ended it there (`u:p@ss#word@db`: host "ss", said in the error as the host to check).
  if (url.includes('#')) return false;
  const text = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(url)
    ? encodeURI(url).replace(/%25(\d\d)/g, '%$1')
    : url;
  for (const candidate of [text, text.replace('@/', '@___DUMMY___/')]) {
    try {
      new URL(candidate, 'postgres://base');
      return true;
    } catch {
      // try the next form
    }
  }
  return false;
}
