/**
 * A Telegram chat as the Bot API takes it in `chat_id`: a chat's number (groups and channels
 * negative, `-1001234567890`) or a public channel's `@username`.
 */
export const TELEGRAM_CHAT = /^(-?\d{1,20}|@[A-Za-z0-9_]{5,64})$/;

/**
 * One spelling per chat: a chat's number as the Bot API reads it (`-0100999` and `+100999` are
 * chats -100999 and 100999 to it), so that the checks that compare chats (the operator's
 * chat, one code per chat, a chat another portal holds) never take two spellings for two
 * chats; an `@name` as typed, trimmed.
 */
export function canonicalChat(chat: string): string {
  const c = chat.trim();
  return /^[+-]?\d{1,20}$/.test(c) ? BigInt(c).toString() : c;
}
