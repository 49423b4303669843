import type { IncomingMessage, ServerResponse } from 'node:http';
import { BX24_SHIM_JS } from './bx24-shim.js';
import { fireInBackground } from './event-delivery.js';
import { dealStagesOf } from './rest-metadata.js';
import { isRecord, readBody, sendJson, sendText } from './http-util.js';
import { PARENT_SCRIPT_JS } from './parent-script.js';
import {
  appHandlerUrl,
  buildFrameForm,
  finishInstall,
  issueUserAuth,
  type FrameForm,
} from './portal-lifecycle.js';
import { findUser, firstAdminId, type PortalState } from './state.js';
import type { EmulatedUser } from './types.js';

/**
 * A browser-usable imitation of the Bitrix24 UI around the app: the app page (installer
 * while not installed), a deal card with the CRM_DEAL_DETAIL_TAB widget, and the BX24 shim.
 * Open it via 127.0.0.1 (not localhost): b24jssdk checks the parent origin against DOMAIN.
 */

const esc = (s: unknown): string =>
  String(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#eef2f4;color:#333}
header{background:#2fc6f6;color:#fff;padding:10px 16px}header a{color:#fff}
main{padding:16px}.card{background:#fff;border-radius:6px;padding:12px 16px;margin-bottom:12px}
.b24emu-frame{width:100%;height:600px;border:0;background:#fff;display:block}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}
.notice{background:#fff3cd;padding:12px;border-radius:6px}`;

interface PageParts {
  title: string;
  user: EmulatedUser | undefined;
  body: string;
  frames?: Array<{ form: FrameForm; user: number }>;
}

function layout(portal: PortalState, parts: PageParts): string {
  const registry: Record<string, unknown> = {};
  for (const f of parts.frames ?? []) registry[f.form.appSid] = f;
  const framesJson = JSON.stringify(registry).replace(/</g, '\\u003c');
  const who = parts.user
    ? ` · ${esc(parts.user.name)} (user ${parts.user.id}${parts.user.admin ? ', admin' : ''})`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>${esc(parts.title)}</title><style>${STYLE}</style></head>
<body data-install-state="${esc(portal.installState)}">
<header>Bitrix24 emulator — ${esc(portal.domain)}${who} · <a href="/">home</a></header>
<main>${parts.body}</main>
<script type="application/json" id="b24emu-frames">${framesJson}</script>
<script>${PARENT_SCRIPT_JS}</script></body></html>`;
}

const frameTag = (form: FrameForm): string =>
  `<iframe class="b24emu-frame" name="${esc(form.frameName)}" data-sid="${esc(form.appSid)}"></iframe>`;

function userFrom(portal: PortalState, url: URL): EmulatedUser | undefined {
  const raw = url.searchParams.get('user');
  return findUser(portal, raw === null ? firstAdminId(portal) : Number(raw));
}

function homePage(portal: PortalState): string {
  const deals = [...portal.deals.items.values()]
    .map(
      (d) =>
        `<li><a href="/crm/deal/details/${esc(d.ID)}/">${esc(d['TITLE'])}</a> — ${esc(d['STAGE_ID'])}</li>`,
    )
    .join('');
  const users = portal.users
    .map(
      (u) =>
        `<li><a href="/app?user=${u.id}">Open the app as ${esc(u.name)}</a>${u.admin ? ' (admin)' : ''}</li>`,
    )
    .join('');
  const app = portal.app
    ? `<p>App: <code>${esc(portal.app.appUrl)}</code>, state <b>${esc(portal.installState)}</b>, version ${portal.appVersion}</p><ul>${users}</ul>`
    : '<p>No app configured (call <code>portal.setApp()</code>).</p>';
  return layout(portal, {
    title: `Bitrix24 emulator — ${portal.domain}`,
    user: undefined,
    body: `<div class="card"><h1>Bitrix24 emulator — ${esc(portal.domain)}</h1>
<p>member_id <code>${esc(portal.memberId)}</code> · REST <code>${esc(portal.clientEndpoint)}</code> · OAuth <code>${esc(portal.ctx.serverEndpoint)}</code></p>
${app}</div><div class="card"><h2>Deals</h2><ul>${deals || '<li>none</li>'}</ul></div>`,
  });
}

function appPage(portal: PortalState, user: EmulatedUser): string {
  const title = `App — ${portal.domain}`;
  const notice = (text: string): string =>
    layout(portal, { title, user, body: `<p class="notice">${esc(text)}</p>` });
  if (!portal.app) return notice('No app configured for this portal.');
  if (portal.installState === 'uninstalled') return notice('The application is not installed.');
  const installing = portal.installState !== 'installed';
  // Until installFinish, users see a notice and admins get the installer again.
  if (installing && !user.admin) {
    return notice('The application is not fully installed yet. Please contact your administrator.');
  }
  if (installing) {
    portal.installState = 'installing';
    portal.installerUserId = user.id;
  }
  const form = buildFrameForm(portal, {
    handlerUrl: appHandlerUrl(
      portal.app.appUrl,
      installing ? (portal.app.installPath ?? '/install') : (portal.app.appPath ?? '/app'),
    ),
    userId: user.id,
    placement: 'DEFAULT',
    placementOptions: {},
    installing,
  });
  return layout(portal, { title, user, body: frameTag(form), frames: [{ form, user: user.id }] });
}

function dealPage(portal: PortalState, user: EmulatedUser, id: string): string | null {
  const deal = portal.deals.get(id);
  if (!deal) return null;
  const rows = Object.entries(deal)
    .filter(([, v]) => typeof v !== 'object' || v === null)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v ?? '')}</td></tr>`)
    .join('');
  const frames: Array<{ form: FrameForm; user: number }> = [];
  let tabs = '';
  if (portal.installState === 'installed') {
    for (const p of portal.placements.filter((x) => x.placement === 'CRM_DEAL_DETAIL_TAB')) {
      const form = buildFrameForm(portal, {
        handlerUrl: p.handler,
        userId: user.id,
        placement: 'CRM_DEAL_DETAIL_TAB',
        placementOptions: { ID: id },
        installing: false,
      });
      frames.push({ form, user: user.id });
      tabs += `<div class="card"><h2>${esc(p.title || 'App')}</h2>${frameTag(form)}</div>`;
    }
  }
  // The stage bar of a real deal card: moving the deal fires ONCRMDEALUPDATE, so whoever
  // tries the app can set off a rule (a walk found only the demo's stream could).
  const stage = String(deal['STAGE_ID'] ?? '');
  const options = dealStagesOf(String(deal['CATEGORY_ID'] ?? '0') || '0')
    .map(
      (s) =>
        `<option value="${esc(s.id)}"${s.id === stage ? ' selected' : ''}>${esc(s.name)}</option>`,
    )
    .join('');
  const move = `<form method="post" action="/crm/deal/details/${esc(id)}/stage?user=${user.id}" id="move-stage"><label>Move to <select name="STAGE_ID">${options}</select></label> <button type="submit">Move</button></form>`;
  return layout(portal, {
    title: `Deal ${id} — ${portal.domain}`,
    user,
    body: `<div class="card"><h1>${esc(deal['TITLE'])}</h1><p>Stage <b>${esc(deal['STAGE_ID'])}</b> · ${esc(deal['OPPORTUNITY'])} ${esc(deal['CURRENCY_ID'])}</p>${move}</div>
${tabs}<div class="card"><details><summary>All fields</summary><table>${rows}</table></details></div>`,
    frames,
  });
}

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  try {
    const parsed: unknown = JSON.parse((await readBody(req)) || '{}');
    return isRecord(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

/** Serves the UI routes; answers false when the path is not one of them. */
export async function handlePage(
  portal: PortalState,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<boolean> {
  const path = url.pathname;
  const html = (status: number, text: string): void => sendText(res, status, 'text/html', text);
  if (req.method === 'GET' && path === '/bx24.js') {
    sendText(res, 200, 'application/javascript', BX24_SHIM_JS);
    return true;
  }
  if (path === '/favicon.ico') {
    res.writeHead(204).end();
    return true;
  }
  if (req.method === 'GET' && path === '/') {
    html(200, homePage(portal));
    return true;
  }
  const user = userFrom(portal, url);
  if (req.method === 'GET' && (path === '/app' || path === '/app/')) {
    if (!user) html(404, 'Unknown user');
    else html(200, appPage(portal, user));
    return true;
  }
  const dealMatch = /^\/crm\/deal\/details\/(\d+)\/?$/.exec(path);
  if (req.method === 'GET' && dealMatch?.[1]) {
    const page = user ? dealPage(portal, user, dealMatch[1]) : null;
    html(page ? 200 : 404, page ?? 'Not found');
    return true;
  }
  const stageMatch = /^\/crm\/deal\/details\/(\d+)\/stage$/.exec(path);
  if (req.method === 'POST' && stageMatch?.[1] && user) {
    const id = stageMatch[1];
    const deal = portal.deals.get(id);
    const wanted = new URLSearchParams(await readBody(req)).get('STAGE_ID') ?? '';
    const known = deal
      ? dealStagesOf(String(deal['CATEGORY_ID'] ?? '0') || '0').some((s) => s.id === wanted)
      : false;
    if (!deal || !known) {
      html(400, 'Unknown deal or stage');
      return true;
    }
    if (deal['STAGE_ID'] !== wanted) {
      if (portal.deals.update(id, { STAGE_ID: wanted }, user.id)?.saved) {
        fireInBackground(portal, 'ONCRMDEALUPDATE', { FIELDS: { ID: id } }, user.id);
      }
    }
    res.writeHead(303, { location: `/crm/deal/details/${id}/?user=${user.id}` }).end();
    return true;
  }
  if (req.method === 'POST' && path === '/__emulator/install-finish') {
    const body = await jsonBody(req);
    const u = findUser(portal, Number(body['user'] ?? firstAdminId(portal)));
    await finishInstall(portal);
    const form =
      portal.app && u
        ? buildFrameForm(portal, {
            handlerUrl: appHandlerUrl(portal.app.appUrl, portal.app.appPath ?? '/app'),
            userId: u.id,
            placement: 'DEFAULT',
            placementOptions: {},
            installing: false,
          })
        : null;
    sendJson(res, 200, { installState: portal.installState, form });
    return true;
  }
  if (req.method === 'POST' && path === '/__emulator/refresh-auth') {
    const body = await jsonBody(req);
    const auth = issueUserAuth(portal, Number(body['user'] ?? firstAdminId(portal)));
    sendJson(res, 200, {
      AUTH_ID: auth.accessToken,
      AUTH_EXPIRES: auth.expiresIn,
      REFRESH_ID: auth.refreshToken,
      MEMBER_ID: auth.memberId,
      DOMAIN: auth.domain,
    });
    return true;
  }
  return false;
}
