import type { Knex } from 'knex';
import type { Condition, EventMap } from '../../server/rules/model.js';

/** One rule: on `event`, when `when`, POST `body` to the accounting stand-in's `path`. */
export const postOn =
  (name: string, event: string, when: Condition[], path: string, body: Record<string, string>) =>
  (urls: { accounting: string }): EventMap => ({
    rules: [
      {
        name,
        on: [event],
        when,
        actions: [{ type: 'http', method: 'POST', url: `${urls.accounting}${path}`, body }],
      },
    ],
  });

/** The stored events whose name is `like` (SQL LIKE), oldest first. */
export const eventRows = async (db: Knex, like: string) =>
  (await db('events').where('event', 'like', like).orderBy('id')) as Array<{
    event: string;
    entity_type: string;
    entity_id: string;
    status: string;
    attempts: number;
    last_error: string | null;
  }>;
