import { findPortalByMemberId } from '../../../db/stores/portals.js';
import type { EmulatedPortal } from '../../emulator/bitrix-emulator.js';
import { eventBody } from '../../helpers/event-builder.js';
import { frameEntry } from '../../helpers/frame-session.js';
import type { InstallHarness } from '../../helpers/install-harness.js';
import type { Row } from '../types.js';

const INSTALL_DATA = { VERSION: '1', ACTIVE: 'Y', INSTALLED: 'Y', LANGUAGE_ID: 'en' };
const FORGED = 300;

/**
 * Forged lifecycle deliveries and the install proof (server/README.md#what-the-app-trusts-and-why),
 * on two installed portals: 300 ONAPPINSTALL posts naming A with junk tokens and a wrong
 * application token; an install by B's admin naming A's member_id; an install and a frame entry
 * with an admin token of another app on the portal. Control: A's genuine ONAPPINSTALL is stored and
 * queued.
 */
export async function lifecycleTrustRow(
  h: InstallHarness,
  A: EmulatedPortal,
  B: EmulatedPortal,
  keep: (text: string) => void,
): Promise<Row> {
  const db = h.t.deps.db;
  const portalA = (await findPortalByMemberId(db, A.memberId))!;
  const count = async (table: string, where: Record<string, unknown>) =>
    Number((await db(table).where(where).count({ n: '*' }).first())?.n ?? 0);
  const post = async (url: string, body: string) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
      redirect: 'manual',
    });
    keep(await res.text());
    return res.status;
  };
  const events = `${h.appUrl}${h.t.deps.manifest.handlers.events}`;
  const jobsBefore = await count('jobs', { portal_id: portalA.id });
  const rowsBefore = await count('events', { member_id: A.memberId, status: 'rejected' });
  const callsBefore = A.calls.length;

  const statuses: number[] = [];
  for (let i = 0; i < FORGED; i += 30) {
    const batch = Array.from({ length: Math.min(30, FORGED - i) }, (_, j) =>
      post(
        events,
        eventBody({
          portal: { ...A, applicationToken: `forged${String(i + j).padStart(26, '0')}` },
          event: 'ONAPPINSTALL',
          data: INSTALL_DATA,
          ts: 1764237600 + i + j,
          accessToken: `junk${String(i + j).padStart(40, '0')}`,
        }),
      ),
    );
    statuses.push(...(await Promise.all(batch)));
  }
  await h.services.intake.drain();
  await h.services.worker.drain();
  const refused401 = statuses.filter((s) => s === 401).length;
  const jobsQueued = (await count('jobs', { portal_id: portalA.id })) - jobsBefore;
  const rowsStored =
    (await count('events', { member_id: A.memberId, status: 'rejected' })) - rowsBefore;
  const profileCalls = A.calls.slice(callsBefore).filter((c) => c.method === 'profile').length;

  const installUrl = h.t.deps.manifest.handlers.install;
  const bAuth = B.issueUserAuth(1);
  const foreignMember = frameEntry(h.appUrl, B, {
    path: installUrl,
    memberId: A.memberId,
    authId: bAuth.accessToken,
  });
  const otherApp = B.issueForeignAppAuth(1);
  const foreignApp = frameEntry(h.appUrl, B, { path: installUrl, authId: otherApp.accessToken });
  const entry = frameEntry(h.appUrl, A, { authId: A.issueForeignAppAuth(1).accessToken });
  const proof = [
    await post(foreignMember.url, foreignMember.body),
    await post(foreignApp.url, foreignApp.body),
    await post(entry.url, entry.body),
  ];
  const proofRefused = proof.filter((s) => s === 401 || s === 403).length;

  const genuine = await post(
    events,
    eventBody({ portal: A, event: 'ONAPPINSTALL', data: INSTALL_DATA, ts: 1764400000 }),
  );
  await h.services.intake.drain();
  const genuineQueued =
    (await count('jobs', { portal_id: portalA.id, type: 'lifecycle', status: 'pending' })) > 0;

  return {
    area: 'Access',
    check: `${FORGED} forged ONAPPINSTALL naming portal A (junk tokens, wrong application token); install under A's member_id by B's admin; install and frame entry with another app's admin token`,
    measured: `forged answered 401 ${refused401} of ${FORGED} · jobs queued ${jobsQueued} · profile calls to A ${profileCalls} · rejected rows stored ${rowsStored} · proof attempts refused ${proofRefused} of 3 (${proof.join('/')}) · control: genuine answered ${genuine}, queued ${genuineQueued ? 'yes' : 'no'}`,
    expected: 'all 401, 0 jobs, 0 calls, ≤ 20 rows; all 3 refused',
    pass:
      refused401 === FORGED &&
      jobsQueued === 0 &&
      profileCalls === 0 &&
      rowsStored <= 20 &&
      proofRefused === 3 &&
      genuine === 200 &&
      genuineQueued,
  };
}
