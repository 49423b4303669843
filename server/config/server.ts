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
    if (/^postgres(ql)?:\/\//i.test(dbUrl)) database = { client: 'pg', connectionString: dbUrl };
    else if (/^sqlite:/i.test(dbUrl)) {
      const file = dbUrl.replace(/^sqlite:(\/\/)?/i, '');
      database = { client: 'sqlite', filename: file ? path.resolve(cwd, file) : database.filename };
    } else {
      r.problems.push(`DATABASE_URL must start with sqlite: or postgres://, got another scheme`);
    }
  }
  return { port, host, appUrl, dataDir, database };
}
