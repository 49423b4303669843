import type { Knex } from 'knex';

/** One portal's messages through one of the operator's channels on one UTC day. */
export interface ChannelDay {
  portalId: number;
  channel: 'sms' | 'email' | 'telegram';
  /** The UTC day's start, ms. */
  dayStart: number;
}

/**
 * Counts `n` messages of the day when fewer than `limit` were sent, in one conditional
 * update (instances sharing the database never both take the last one); false when the day's
 * are spent. A step may take the count past `limit` (an e-mail to several recipients), never
 * start past it.
 */
export async function takeChannelMessages(
  db: Knex,
  day: ChannelDay,
  n: number,
  limit: number,
): Promise<boolean> {
  const key = { portal_id: day.portalId, channel: day.channel, day_start: day.dayStart };
  await db('channel_usage')
    .insert({ ...key, sent: 0 })
    .onConflict(['portal_id', 'channel', 'day_start'])
    .ignore();
  const taken = await db('channel_usage').where(key).where('sent', '<', limit).increment('sent', n);
  return Number(taken) === 1;
}
