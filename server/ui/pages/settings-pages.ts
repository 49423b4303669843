import { refusedRecipient } from '../../actions/email.js';
import { Router, type Response } from 'express';
import type { Deps } from '../../deps.js';
import {
  APP_OWN_EVENTS,
  chosenEvents,
  eventHandlerUrl,
  LIFECYCLE_BINDINGS,
  TOKEN_TEST_EVENT,
  syncBindings,
  type BindingSync,
} from '../../install/bindings.js';
import { deleteSetting, getSetting, putSetting } from '../../../db/stores/settings.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';
import { maskForView } from '../mask-view.js';
import { NAMED_EVENTS, SUPPORTED_EVENTS } from '../supported-events.js';
import { grantedScopes, missingScope, scopeOfEvent } from '../../bitrix/scopes.js';
import { sendTestAlert } from '../test-alert.js';
import { telegramChatRefusal } from '../../processing/telegram-chats.js';
import { linkedChatsOf, unlinkTelegramChat } from '../../../db/stores/telegram-chats.js';
import { linkWithCode, sendLinkCode, telegramBotName } from '../telegram-link.js';
import { within } from '../../lib/within.js';
import { canonicalChat, TELEGRAM_CHAT } from '../../lib/telegram-chat.js';
import { effectiveMap } from '../../rules/map-store.js';

export const ALERT_KEYS = { telegram: 'alerts.telegramChatId', email: 'alerts.email' } as const;

const EMAIL = /^[^\s@<>"',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,}$/;

/** Subscriptions (wanted vs bound, re-sync) and alert settings. */
export function settingsPages(deps: Deps, notifyWorker: () => void): Router {
  const router = Router();

  /** The enabled rules of the portal's map, and by name those that listen to an event. */
  const listeners = async (memberId: string) => {
    const rules = (await effectiveMap(deps.db, memberId)).rules.filter((r) => r.enabled !== false);
    const heard = (event: string) => rules.filter((r) => r.on.includes(event)).map((r) => r.name);
    return Object.assign(heard, { rules });
  };

  const renderSubs = async (
    res: Response,
    extra: {
      sync?: BindingSync;
      error?: string;
      /** Unticked events that enabled rules listen to, not saved until confirmed. */
      confirm?: Array<{ name: string; rules: string[] }>;
      /** The ticks as the admin sent them (shown while confirming). */
      ticked?: string[];
      /** Events bound again that rules listen to: what happened meanwhile was not sent. */
      rebound?: string[];
    } = {},
  ) => {
    const { portal, user } = uiContext(res);
    const chosen = extra.ticked ?? (await chosenEvents(deps, user.memberId));
    let actual: string[] | undefined;
    let unavailable = '';
    try {
      const bound =
        (await deps.bitrix.call<Array<{ event: string; handler: string }>>(portal, 'event.get')) ??
        [];
      const handler = eventHandlerUrl(deps);
      actual = bound.filter((b) => b.handler === handler).map((b) => String(b.event).toUpperCase());
    } catch (e) {
      unavailable = maskForView((e as Error).message);
    }
    // Only what the app's scopes allow is offered: the portal refuses the rest.
    const granted = grantedScopes(deps.manifest.scopes, portal.scope);
    const offered = SUPPORTED_EVENTS.map((e) => e.name).filter(
      (n) => !missingScope(scopeOfEvent(n), granted),
    );
    // The app's own bindings (its lifecycle, and ONOFFLINEEVENT for loss recovery) are not
    // an admin's choice: the page names them below the table instead of as an unticked row.
    const names = [...new Set([...offered, ...chosen, ...(actual ?? [])])].filter(
      (n) => !APP_OWN_EVENTS.includes(n),
    );
    // Which enabled rules listen to each event: an admin unticking one sees what stops.
    const usedBy = await listeners(user.memberId);
    const { rules } = usedBy;
    // After a save or re-sync: the rules that listen to an event now bound nowhere.
    const unbound = extra.sync
      ? rules.filter((r) => r.on.some((e) => !extra.sync!.events.includes(e)))
      : [];
    res.render('ui/subscriptions', {
      nav: 'subscriptions',
      rows: names.map((name) => ({
        name,
        description: NAMED_EVENTS.find((e) => e.name === name)?.[user.lang] ?? '',
        chosen: chosen.includes(name),
        actual: actual ? actual.includes(name) : undefined,
        usedBy: usedBy(name),
      })),
      appOwn: [
        ...LIFECYCLE_BINDINGS,
        ...(actual?.includes('ONOFFLINEEVENT') ? ['ONOFFLINEEVENT'] : []),
        ...(actual?.includes(TOKEN_TEST_EVENT) ? [TOKEN_TEST_EVENT] : []),
      ],
      unavailable,
      sync: extra.sync,
      silenced: unbound.map((r) => ({
        name: r.name,
        events: r.on.filter((e) => !extra.sync!.events.includes(e)),
      })),
      error: extra.error ?? '',
      confirm: extra.confirm ?? [],
      rebound: extra.rebound ?? [],
    });
  };

  router.get('/ui/subscriptions', async (_req, res) => renderSubs(res));

  router.post('/ui/subscriptions', requireAdmin, csrfProtection, async (req, res) => {
    const { portal, user } = uiContext(res);
    const body = req.body as Record<string, unknown>;
    let rebound: string[] = [];
    if (body.save === '1') {
      const raw = body.events;
      const list = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw])
        .map((e) => String(e).trim().toUpperCase())
        .filter((e) => /^[A-Z0-9_]{2,64}$/.test(e));
      const granted = grantedScopes(deps.manifest.scopes, portal.scope);
      const refused = list.flatMap((e) => {
        const why = missingScope(scopeOfEvent(e), granted);
        return why ? [`${e} ${why}`] : [];
      });
      if (refused.length) {
        res.status(400);
        await renderSubs(res, { error: `Not saved: ${refused.join('; ')}` });
        return;
      }
      // Unticking an event a rule listens to unbinds it at once, and Bitrix24 never sends
      // again what happens meanwhile: a walk unticked deal updates for half a minute and two
      // paid deals got no invoice, with nothing said before. It is asked first.
      const before = await chosenEvents(deps, user.memberId);
      const heard = await listeners(user.memberId);
      const dropped = before
        .filter((e) => !list.includes(e))
        .map((name) => ({ name, rules: heard(name) }))
        .filter((d) => d.rules.length > 0);
      // Confirmed by name: an event unticked on the confirmation page itself is asked again.
      const rawConfirmed = body.confirmed;
      const confirmed = (
        Array.isArray(rawConfirmed)
          ? rawConfirmed
          : rawConfirmed === undefined
            ? []
            : [rawConfirmed]
      ).map((e) => String(e).trim().toUpperCase());
      if (dropped.some((d) => !confirmed.includes(d.name))) {
        await renderSubs(res, { confirm: dropped, ticked: [...new Set(list)] });
        return;
      }
      await putSetting(deps.db, user.memberId, 'events', [...new Set(list)], deps.clock.now());
      rebound = list.filter((e) => !before.includes(e) && heard(e).length > 0);
    }
    let sync: BindingSync | undefined;
    let error = '';
    try {
      sync = await syncBindings(deps, portal);
    } catch (e) {
      error = maskForView((e as Error).message);
    }
    await renderSubs(res, {
      sync,
      error,
      rebound: sync ? rebound.filter((e) => sync.events.includes(e)) : [],
    });
  });

  const renderAlerts = async (res: Response, extra: Record<string, unknown> = {}) => {
    const { portal, user } = uiContext(res);
    res.render('ui/alerts', {
      nav: 'alerts',
      telegram: (await getSetting<string>(deps.db, user.memberId, ALERT_KEYS.telegram)) ?? '',
      email: (await getSetting<string>(deps.db, user.memberId, ALERT_KEYS.email)) ?? '',
      saved: false,
      errors: [] as string[],
      sent: undefined,
      skipped: [] as string[],
      testRefused: undefined,
      linked: await linkedChatsOf(deps.db, portal.id),
      telegramOn: Boolean(deps.config.telegram.botToken),
      emailOn: Boolean(deps.config.email.smtpUrl),
      // Named in the help, so an admin knows which bot to add (never waits long for it).
      botName: await within(telegramBotName(deps), 1500),
      linkChat: '',
      codeSentTo: '',
      linkNotice: '',
      linkError: '',
      ...extra,
    });
  };

  router.get('/ui/alerts', async (_req, res) => renderAlerts(res));

  router.post('/ui/alerts', requireAdmin, csrfProtection, async (req, res) => {
    const { user } = uiContext(res);
    const body = req.body as Record<string, unknown>;
    // Stored and compared in one spelling: `-0100999` is the operator's `-100999` to Telegram.
    const telegram = canonicalChat(String(body.telegram ?? ''));
    const email = String(body.email ?? '').trim();
    const errors: string[] = [];
    if (telegram && !TELEGRAM_CHAT.test(telegram)) {
      errors.push('Telegram chat id: a number like -1001234567890 or @channel_name');
    }
    if (telegram && TELEGRAM_CHAT.test(telegram)) {
      const refused = await telegramChatRefusal(deps, uiContext(res).portal.id, telegram);
      if (refused) errors.push(`Telegram chat id: ${refused}`);
    }
    if (email && !EMAIL.test(email)) errors.push('E-mail: an address like ops@example.com');
    else if (email && refusedRecipient(email, deps.config.actions.privateHosts)) {
      errors.push(
        'E-mail: not a public mail domain (the server sends mail inside its own network only to domains listed in ACTION_PRIVATE_HOSTS)',
      );
    }
    if (errors.length) {
      res.status(400);
      await renderAlerts(res, { telegram, email, errors });
      return;
    }
    const now = deps.clock.now();
    for (const [key, value] of [
      [ALERT_KEYS.telegram, telegram],
      [ALERT_KEYS.email, email],
    ] as const) {
      if (value) await putSetting(deps.db, user.memberId, key, value, now);
      else await deleteSetting(deps.db, user.memberId, key);
    }
    await renderAlerts(res, { saved: true });
  });

  // Linking a Telegram chat (server/ui/telegram-link.ts): a code posted in the chat, typed back.
  router.post('/ui/alerts/telegram/code', requireAdmin, csrfProtection, async (req, res) => {
    const chat = String((req.body as Record<string, unknown>).chat ?? '').trim();
    const result = await sendLinkCode(deps, uiContext(res).portal, chat);
    if ('error' in result) {
      res.status(400);
      await renderAlerts(res, {
        linkChat: chat,
        linkError: result.error,
        codeSentTo: result.pending ?? '',
      });
      return;
    }
    await renderAlerts(res, { linkChat: chat, codeSentTo: result.chatId, linkNotice: 'codeSent' });
  });

  router.post('/ui/alerts/telegram/link', requireAdmin, csrfProtection, async (req, res) => {
    const body = req.body as Record<string, unknown>;
    const chat = String(body.chat ?? '').trim();
    const result = await linkWithCode(deps, uiContext(res).portal, chat, String(body.code ?? ''));
    if ('error' in result) {
      res.status(400);
      // A code that has ended cannot be typed again: the page offers a new one instead.
      await renderAlerts(res, {
        linkChat: chat,
        codeSentTo: result.ended ? '' : chat,
        linkError: result.error,
      });
      return;
    }
    await renderAlerts(res, { linkChat: chat, linkNotice: 'linked' });
  });

  router.post('/ui/alerts/telegram/unlink', requireAdmin, csrfProtection, async (req, res) => {
    const chat = String((req.body as Record<string, unknown>).chat ?? '').trim();
    await unlinkTelegramChat(deps.db, canonicalChat(chat), uiContext(res).portal.id);
    await renderAlerts(res, { linkChat: chat, linkNotice: 'unlinked' });
  });

  router.post('/ui/alerts/test', requireAdmin, csrfProtection, async (_req, res) => {
    const { portal } = uiContext(res);
    const result = await sendTestAlert(deps, portal, notifyWorker);
    if ('refused' in result) res.status(result.refused === 'tooSoon' ? 429 : 409);
    await renderAlerts(
      res,
      'sent' in result
        ? { sent: result.sent, skipped: result.skipped }
        : { testRefused: result.refused },
    );
  });

  return router;
}
