import {
  connectWebhook,
  ConnectRefusedError,
  disconnectWebhook,
} from '../install/connect-webhook.js';
import { requirePortal, type CommandContext } from './context.js';
import { UsageError } from './io.js';

const need = (ctx: CommandContext, name: string): string => {
  const v = ctx.flags[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
};

/**
 * `connect-webhook --webhook-url URL --application-token TOKEN --member-id ID [--domain D]`:
 * connects a portal in inbound-webhook mode and prints what to enter in Bitrix24's
 * outgoing-webhook form.
 */
export async function connectWebhookCommand(ctx: CommandContext): Promise<number> {
  const webhookUrl = need(ctx, 'webhook-url');
  const applicationToken = need(ctx, 'application-token');
  const memberId = need(ctx, 'member-id');
  const domain = typeof ctx.flags.domain === 'string' ? ctx.flags.domain : undefined;
  let result;
  try {
    result = await connectWebhook(ctx.deps, { webhookUrl, applicationToken, memberId, domain });
  } catch (e) {
    if (e instanceof ConnectRefusedError) {
      // A malformed argument is bad usage (2); a refusal by the portal or the config is 1.
      if (e.badInput) throw new UsageError(e.message);
      ctx.io.err(`b24hooks connect-webhook: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const out = {
    memberId: result.portal.member_id,
    domain: result.portal.domain,
    authMode: 'webhook',
    handlerUrl: result.handlerUrl,
    events: result.events,
  };
  if (ctx.json) ctx.io.out(JSON.stringify(out) + '\n');
  else {
    ctx.io.out(
      [
        `Connected ${out.domain} (member_id ${out.memberId}) by inbound webhook.`,
        '',
        'In Bitrix24 (Developer resources → Other → Outgoing webhook) enter:',
        `  Handler URL: ${out.handlerUrl}`,
        `  Events:      ${out.events.join(', ')}`,
        'and keep the application token shown there equal to the one given here.',
        '',
      ].join('\n'),
    );
  }
  return 0;
}

/**
 * `disconnect-webhook --portal MEMBER_ID`: ends a connection made by `connect-webhook` (a
 * wrong member_id, a webhook to withdraw); the portal stays listed as uninstalled.
 */
export async function disconnectWebhookCommand(ctx: CommandContext): Promise<number> {
  const portal = await requirePortal(ctx.deps, need(ctx, 'portal'));
  let outcome;
  try {
    outcome = await disconnectWebhook(ctx.deps, portal);
  } catch (e) {
    if (!(e instanceof ConnectRefusedError)) throw e;
    ctx.io.err(`b24hooks disconnect-webhook: ${e.message}\n`);
    return 1;
  }
  const { member_id: memberId, domain } = portal;
  if (ctx.json)
    ctx.io.out(JSON.stringify({ memberId, domain, status: 'uninstalled', outcome }) + '\n');
  else if (outcome === 'already') {
    ctx.io.out(`${domain} (member_id ${memberId}) is not connected (uninstalled already).\n`);
  } else {
    ctx.io.out(
      [
        `Disconnected ${domain} (member_id ${memberId}): its webhook URL and application token are forgotten,`,
        'and its deliveries are refused from now on. Its event log and rules stay',
        `(npx b24hooks erase --portal ${memberId} removes them); delete the outgoing webhook in Bitrix24 too.`,
        '',
      ].join('\n'),
    );
  }
  return 0;
}
