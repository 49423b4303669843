import { runSuite } from './suite.js';

/**
 * `npm run test:reliability [-- --short] [-- --only name,name]`: runs the reliability and
 * security suite (full form unless --short), prints the table, exits 1 if any row failed.
 */
const args = process.argv.slice(2);
const at = args.indexOf('--only');
const only = at >= 0 ? (args[at + 1] ?? '').split(',').filter(Boolean) : undefined;
const rows = await runSuite(args.includes('--short') ? 'short' : 'full', { only });
const failed = rows.filter((r) => !r.pass).length;
process.stdout.write(
  failed ? `\n${failed} of ${rows.length} checks FAILED\n` : `\nall ${rows.length} checks passed\n`,
);
process.exit(failed ? 1 : 0);
