import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCliIn } from '../../helpers/cli.js';
import { secretStepMap } from '../../helpers/secret-map.js';
import { startUiHarness } from '../../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm } from '../../integration/ui/ui-client.js';
import type { ReliabilityContext, Row } from '../types.js';

/** Every file under a directory (the database, its -wal and -shm). */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

/**
 * Rule secrets (server/rules/README.md#secrets-in-steps): an http step's secret, its Authorization
 * header and an `$env` value, looked for in clear on every surface a rule reaches: the rules page
 * and export for a non-admin and an admin, a dry run, the event pages, the CLI export, the logs and
 * the database files. Controls: the admin's explicit reveal shows them, and the receiver got them.
 */
export async function ruleSecretRows(ctx: ReliabilityContext): Promise<Row[]> {
  const secret = `whsec_${Buffer.from('reliability-rule-secret-0451').toString('base64')}`;
  const token = 'rel-erp-bearer-9d2c77a1';
  const envValue = 'rel-env-value-5b81e0';
  const h = await startUiHarness({
    env: { ACTION_SECRET_ENV: 'REL_ERP_TOKEN', REL_ERP_TOKEN: envValue },
  });
  const surfaces: Array<[string, string]> = [];
  try {
    const admin = await openSession(h);
    const reader = await openSession(h, { userId: 2 });
    const csrf = csrfOf((await getPage(h, '/ui/rules', admin.cookie)).html);
    const map = secretStepMap({
      url: `${h.sink.url}/invoices`,
      token,
      secret,
      envName: 'REL_ERP_TOKEN',
    });
    const saved = await postForm(
      h,
      '/ui/rules',
      { _csrf: csrf, map: JSON.stringify(map) },
      admin.cookie,
    );
    if (saved.status !== 200) throw new Error(`saving the map answered ${saved.status}`);
    surfaces.push(['save answer', saved.html]);
    const deal = await h.portal.addDeal({ TITLE: 'Secret order', STAGE_ID: 'NEW' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
    const received = h.sink.requests.find((r) => r.url === '/invoices');
    const sent =
      received?.headers.authorization === `Bearer ${token}` &&
      received.headers['x-erp-key'] === envValue &&
      String(received.headers['webhook-signature']).startsWith('v1,');

    surfaces.push(['non-admin rules page', (await getPage(h, '/ui/rules', reader.cookie)).html]);
    const readerExport = await getPage(h, '/ui/rules/export', reader.cookie);
    surfaces.push(['non-admin export', readerExport.html]);
    surfaces.push(['admin rules page', (await getPage(h, '/ui/rules', admin.cookie)).html]);
    surfaces.push(['admin export', (await getPage(h, '/ui/rules/export', admin.cookie)).html]);
    surfaces.push([
      'dry run',
      (
        await postForm(
          h,
          '/ui/rules/dry-run',
          { _csrf: csrf, event: 'ONCRMDEALUPDATE', id: deal.id },
          admin.cookie,
        )
      ).html,
    ]);
    const events = (await h.t.deps.db('events').select('id')) as Array<{ id: number }>;
    for (const e of events) {
      surfaces.push([
        `event page ${e.id}`,
        (await getPage(h, `/ui/events/${e.id}`, admin.cookie)).html,
      ]);
      surfaces.push([
        `event page ${e.id} (non-admin)`,
        (await getPage(h, `/ui/events/${e.id}`, reader.cookie)).html,
      ]);
    }
    const cliExport = await runCliIn(h.t, ['rules', 'export', '--portal', h.portal.memberId]);
    surfaces.push(['CLI export', cliExport.out + cliExport.err]);
    const pages = surfaces.length;
    surfaces.push(['logs', h.t.logs.lines.join('\n')]);
    const files = filesUnder(h.t.dir);
    for (const file of files) {
      surfaces.push([path.basename(file), fs.readFileSync(file).toString('latin1')]);
    }
    const revealed = await postForm(h, '/ui/rules/reveal', { _csrf: csrf }, admin.cookie);
    const revealShows = revealed.html.includes(token) && revealed.html.includes(secret);

    const needles = [secret, token, envValue];
    const found = surfaces.flatMap(([where, text]) =>
      needles.filter((n) => text.includes(n)).map((n) => `${n.slice(0, 8)}… in ${where}`),
    );
    // The pages go to the suite-wide token scan too (not the reveal: it shows them by design).
    for (const [, text] of surfaces.slice(0, pages)) ctx.pages.push(text);
    return [
      {
        area: 'Secrets',
        check: `an http step's secret, Authorization header and $env value on ${surfaces.length} surfaces (rules page and export as non-admin and admin, dry run, ${events.length * 2} event pages, CLI export, logs, ${files.length} data files)`,
        measured: `found in clear ${found.length}${found.length ? ` (${found.slice(0, 4).join('; ')})` : ''} · non-admin export answered ${readerExport.status} · admin's explicit reveal shows them: ${revealShows ? 'yes' : 'no'} · sent to the receiver in clear: ${sent ? 'yes' : 'no'}`,
        expected: 'found 0; reveal and send work',
        pass: found.length === 0 && revealShows && sent && readerExport.status === 403,
      },
    ];
  } finally {
    // What this harness produced joins the suite-wide scan for issued tokens.
    ctx.logs.push(...h.t.logs.lines);
    for (const t of h.emu.issuedTokens()) ctx.issuedTokens.add(t);
    const kept = fs.mkdtempSync(path.join(os.tmpdir(), 'b24hooks-rel-rule-secrets-'));
    fs.cpSync(h.t.dir, kept, { recursive: true });
    ctx.dataDirs.push(kept);
    await h.close();
  }
}
