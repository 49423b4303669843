import type { Deps } from '../deps.js';
import { recipientCount } from '../actions/email.js';
import { PausedError } from '../lib/retry-errors.js';
import type { Action } from '../rules/model.js';
import { takeChannelMessages, type ChannelDay } from '../../db/stores/channel-usage.js';

const DAY_MS = 86_400_000;

const CHANNEL_NAMES: Record<ChannelDay['channel'], string> = {
  sms: 'SMS',
  email: 'e-mails',
  telegram: 'Telegram messages',
};

/** A step held back by the day's quota: it did not run, so nothing of it is recorded. */
export class QuotaPause extends PausedError {}

/** How many messages a rendered step sends: an e-mail one per recipient, the others one. */
function messagesOf(rendered: Action): number {
  return rendered.type === 'email' ? Math.max(1, recipientCount(rendered.to)) : 1;
}

/** Portals told of today's spent quota on this instance (one log line a portal, channel, day). */
const told = new Set<string>();

/**
 * `PORTAL_MESSAGES_PER_DAY`: the operator's SMS gateway, SMTP server and Telegram bot are paid
 * for and answered for by the operator, and anyone may install the app and write rules: one
 * portal's rules sent as many SMS as its deals changed, to numbers of its choosing. Each
 * portal may send this many a UTC day through each channel; past it, its steps on that
 * channel wait for the next day (no attempt spent, nothing lost), the other portals and its
 * other steps go on. Counted in the database, so it holds across instances.
 */
export async function takeChannelQuota(
  deps: Pick<Deps, 'db' | 'config' | 'clock' | 'logger'>,
  portal: { id: number; member_id: string },
  rendered: Action,
): Promise<void> {
  const limit = deps.config.worker.portalMessagesPerDay;
  if (limit === 0) return;
  if (rendered.type !== 'sms' && rendered.type !== 'email' && rendered.type !== 'telegram') return;
  const now = deps.clock.now().getTime();
  const dayStart = Math.floor(now / DAY_MS) * DAY_MS;
  const day: ChannelDay = { portalId: portal.id, channel: rendered.type, dayStart };
  if (await takeChannelMessages(deps.db, day, messagesOf(rendered), limit)) return;
  const key = `${portal.id}:${rendered.type}:${dayStart}`;
  if (!told.has(key)) {
    if (told.size > 10_000) told.clear();
    told.add(key);
    deps.logger.warn(
      { memberId: portal.member_id, channel: rendered.type, limit },
      "a portal's steps sent PORTAL_MESSAGES_PER_DAY messages today through this channel: the rest wait for the next day (UTC)",
    );
  }
  const resumeAfterMs = dayStart + DAY_MS - now;
  throw new QuotaPause(
    `this portal's steps sent ${limit} ${CHANNEL_NAMES[rendered.type]} today, the server's limit (PORTAL_MESSAGES_PER_DAY): the rest are sent from 00:00 UTC`,
    resumeAfterMs,
  );
}
