import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createSecretBox } from '../../../server/lib/crypto.js';
import { SECRETS_FILE } from '../../../server/secrets.js';
import { CLIENT_SECRET } from '../../helpers/install-harness.js';
import { ruleSecretRows } from '../lib/rule-secrets.js';
import type { ReliabilityContext, Row, Scenario } from '../types.js';

const fmt = (n: number) => n.toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;

/**
 * Copies an in-process harness's data dir (its own temp dir goes away on close) so the
 * secret scan sees its database, -wal file included, as it was. Returns the copy, which the
 * suite removes at the end.
 */
export function keepDataDir(dir: string, label: string): string {
  const dest = fs.mkdtempSync(path.join(os.tmpdir(), `b24hooks-rel-${label}-`));
  fs.cpSync(dir, dest, { recursive: true });
  return dest;
}

/**
 * Finds needles in large texts without one pass per needle: hex needles (every token the
 * emulator issues is hex) are looked up in a set for every window of every long hex run of
 * the text; the few others are searched directly.
 */
function createFinder(needles: Iterable<string>) {
  const hex = new Map<number, Set<string>>();
  const other: string[] = [];
  for (const n of needles) {
    if (n.length < 8) continue;
    if (/^[0-9a-f]+$/i.test(n)) {
      const set = hex.get(n.length) ?? new Set<string>();
      set.add(n.toLowerCase());
      hex.set(n.length, set);
    } else other.push(n);
  }
  const minHex = Math.min(...hex.keys());
  return {
    count: [...hex.values()].reduce((a, s) => a + s.size, 0) + other.length,
    /** The needles found in `text`. */
    find(text: string): Set<string> {
      const found = new Set<string>();
      if (hex.size) {
        const runs = text.matchAll(new RegExp(`[0-9a-fA-F]{${minHex},}`, 'g'));
        for (const m of runs) {
          const run = m[0].toLowerCase();
          for (const [len, set] of hex) {
            for (let i = 0; i + len <= run.length; i++) {
              const w = run.slice(i, i + len);
              if (set.has(w)) found.add(w);
            }
          }
        }
      }
      for (const n of other) if (text.includes(n)) found.add(n);
      return found;
    },
  };
}

const short = (s: string) => `${s.slice(0, 6)}…(${s.length})`;

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** The key store `npm start` writes: exactly the session secret and the encryption key. */
function readKeyStore(dir: string): { sessionSecret: string; tokenEncryptionKey: string } | null {
  const file = path.join(dir, SECRETS_FILE);
  if (!fs.existsSync(file)) return null;
  const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const keys = Object.keys(v).sort().join(',');
  if (keys !== 'sessionSecret,tokenEncryptionKey') {
    throw new Error(`${file} holds more than the key pair: ${keys}`);
  }
  return v as { sessionSecret: string; tokenEncryptionKey: string };
}

const TOKEN_COLUMNS: Array<[table: string, column: string]> = [
  ['portals', 'access_token_enc'],
  ['portals', 'refresh_token_enc'],
  ['portals', 'webhook_url_enc'],
  ['events', 'auth_enc'],
];

/**
 * Runs last: every log line, page and data file the suite produced is scanned for every
 * token the emulators issued and for the app's client secret; then the databases' token
 * columns are opened and checked to be ciphertext.
 */
export const scenario: Scenario = async (ctx: ReliabilityContext): Promise<Row[]> => {
  const ruleRows = await ruleSecretRows(ctx);
  const tokens = [...ctx.issuedTokens].filter((t) => t.length >= 8);
  const finder = createFinder([...tokens, CLIENT_SECRET]);
  const hits: string[] = [];

  // Logs and pages.
  const logText = ctx.logs.join('\n');
  const pageText = ctx.pages.join('\n\u0000\n');
  for (const [where, text] of [
    ['logs', logText],
    ['pages', pageText],
  ] as const) {
    for (const f of finder.find(text)) hits.push(`${short(f)} in ${where}`);
  }

  // Every file of every data dir, raw bytes (the database, its -wal and -shm, secrets.json).
  const missing = ctx.dataDirs.filter((d) => !fs.existsSync(d));
  const dirs = ctx.dataDirs.filter((d) => fs.existsSync(d));
  let files = 0;
  let bytes = 0;
  let keyStores = 0;
  const keyNeedles: string[] = [];
  const boxes = new Map<string, ReturnType<typeof createSecretBox>>();
  for (const dir of dirs) {
    const keyStore = readKeyStore(dir);
    if (keyStore) {
      keyStores += 1;
      keyNeedles.push(keyStore.sessionSecret, keyStore.tokenEncryptionKey);
      boxes.set(dir, createSecretBox(Buffer.from(keyStore.tokenEncryptionKey, 'hex')));
    }
    for (const file of filesUnder(dir)) {
      const raw = fs.readFileSync(file);
      files += 1;
      bytes += raw.length;
      for (const f of finder.find(raw.toString('latin1'))) {
        hits.push(`${short(f)} in ${path.basename(dir)}/${path.relative(dir, file)}`);
      }
    }
  }
  // The key pair lives in secrets.json by design (that file is the key store, mode 0600);
  // it must appear nowhere else: not in a log, not in a page.
  const keyFinder = createFinder(keyNeedles);
  const keyHits = keyNeedles.length ? keyFinder.find(`${logText}\n${pageText}`).size : 0;

  // Tokens at rest: the token columns hold ciphertext, neither the token nor its base64.
  const issued = new Set(tokens);
  const encodings = new Set<string>();
  for (const t of tokens) {
    encodings.add(t);
    encodings.add(Buffer.from(t).toString('base64'));
    encodings.add(Buffer.from(t).toString('base64url'));
  }
  let values = 0;
  let ciphertext = 0;
  let plain = 0;
  let decrypted = 0;
  let decryptable = 0;
  let databases = 0;
  for (const dir of dirs) {
    const file = path.join(dir, 'b24hooks.sqlite');
    if (!fs.existsSync(file)) continue;
    databases += 1;
    const db = new Database(file, { readonly: true });
    try {
      for (const [table, column] of TOKEN_COLUMNS) {
        const rows = db
          .prepare(`select ${column} as v from ${table} where ${column} is not null`)
          .all() as Array<{ v: string }>;
        for (const { v } of rows) {
          values += 1;
          if (/^v1\.[A-Za-z0-9_-]{40,}$/.test(v)) ciphertext += 1;
          if ([...encodings].some((e) => v.includes(e))) plain += 1;
          const box = boxes.get(dir);
          if (box && column !== 'webhook_url_enc') {
            decryptable += 1;
            try {
              const clear = box.decrypt(v);
              // An unverified delivery's auth block, kept until it is verified, is JSON.
              const inside =
                column === 'auth_enc' ? typeof JSON.parse(clear) === 'object' : issued.has(clear);
              if (inside) decrypted += 1;
            } catch {
              // counted as not decrypted
            }
          }
        }
      }
      const digests = db
        .prepare(
          `select application_token_digest as d from portals where application_token_digest is not null`,
        )
        .all() as Array<{ d: string }>;
      for (const { d } of digests) if (issued.has(d) || !/^[0-9a-f]{64}$/.test(d)) plain += 1;
    } finally {
      db.close();
    }
  }

  // Control: a token planted in a text (inside a longer hex run, too) is found.
  const planted = tokens[0] ?? '';
  const control =
    planted !== '' &&
    finder.find(`log line {"x":"${planted}"}`).has(planted.toLowerCase()) &&
    finder.find(`ab12${planted}cd34`).has(planted.toLowerCase());

  const inText = hits.filter((x) => / in (logs|pages)$/.test(x));
  const inFiles = hits.filter((x) => !/ in (logs|pages)$/.test(x));
  const where = (xs: string[]) => (xs.length ? ` (${xs.slice(0, 5).join('; ')})` : '');
  return [
    ...ruleRows,
    {
      area: 'Secrets',
      check: `logs (${fmt(ctx.logs.length)} chunks, ${mb(logText.length)}) and pages (${fmt(ctx.pages.length)} bodies, ${mb(pageText.length)}) scanned for every issued token and the client secret (${fmt(finder.count)})`,
      measured: `found ${inText.length}${where(inText)} · control (a planted token) found: ${control ? 'yes' : 'no'}`,
      expected: 'found 0',
      pass:
        control &&
        tokens.length > 0 &&
        ctx.logs.length > 0 &&
        ctx.pages.length > 0 &&
        inText.length === 0,
    },
    {
      area: 'Secrets',
      check: `data dirs (${dirs.length}, ${fmt(files)} files with -wal/-shm, ${mb(bytes)} raw bytes) scanned for the same; secrets.json (the key store, ${keyStores}) scanned too`,
      measured: `found ${inFiles.length}${where(inFiles)} · missing dirs ${missing.length} · session secret or encryption key in logs/pages ${keyHits}`,
      expected: 'found 0',
      pass: dirs.length > 0 && missing.length === 0 && inFiles.length === 0 && keyHits === 0,
    },
    {
      area: 'Secrets',
      check: `tokens at rest (${TOKEN_COLUMNS.map((c) => c.join('.')).join(', ')}) in ${databases} databases`,
      measured: `${fmt(values)} values · ciphertext (v1. AES-GCM) ${fmt(ciphertext)} · plain or base64 ${plain} · decrypt to an issued token with the key store ${fmt(decrypted)} of ${fmt(decryptable)}`,
      expected: 'all ciphertext, 0 plain',
      pass: values > 0 && ciphertext === values && plain === 0 && decrypted === decryptable,
    },
  ];
};
