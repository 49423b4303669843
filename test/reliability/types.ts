/**
 * The reliability and security suite (test/reliability/README.md): every scenario measures
 * something and returns rows of one table. `npm run test:reliability` runs them all in full form
 * and prints the table; `npm test` runs them in short form.
 */
export type Scale = 'short' | 'full';

export interface ReliabilityContext {
  scale: Scale;
  /** Every log line and stdout/stderr chunk any scenario's servers produced. */
  logs: string[];
  /** Every HTML page and response body served to a client during the run. */
  pages: string[];
  /** Every token any emulator issued during the run (access, refresh, application tokens, AUTH_IDs). */
  issuedTokens: Set<string>;
  /** Data directories of the servers run, scanned for tokens at rest. */
  dataDirs: string[];
}

export interface Row {
  /** e.g. "Crash", "Faults", "Hostile input", "Access", "Secrets", "Injection". */
  area: string;
  /** What was done, e.g. "SIGKILL during intake under load". */
  check: string;
  /** What was measured, e.g. "acknowledged 4,812 · stored 4,812 · lost 0". */
  measured: string;
  /** The bar, e.g. "lost 0". */
  expected: string;
  pass: boolean;
}

export type Scenario = (ctx: ReliabilityContext) => Promise<Row[]>;
