/**
 * A Telegram chat as the Bot API takes it in `chat_id`: a chat's number (groups and channels
 * negative, `-1001234567890`) or a public channel's `@username`.
 */
export const TELEGRAM_CHAT = /^(-?\d{1,20}|@[A-Za-z0-9_]{5,64})$/;
