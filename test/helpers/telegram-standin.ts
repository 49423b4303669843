import { startHttpSink, type HttpSink, type SinkReply } from './http-sink.js';
import { readMarkup } from '../../server/lib/telegram-markup.js';

export interface SentMessage {
  chat_id: string | number;
  text: string;
  parse_mode?: string;
  /** What the reader sees: the text with its markup parsed away (server/lib/telegram-markup.ts). */
  plain: string;
}

export interface TelegramStandin {
  /** Use as TELEGRAM_API_URL. */
  url: string;
  token: string;
  /** Messages accepted, in order. */
  sent: SentMessage[];
  sink: HttpSink;
  /** The next call fails like the Bot API does (e.g. 429 with retry_after, 400 chat not found). */
  failNext(error: { code: number; description: string; retryAfter?: number }): void;
  /** The next getChat fails so (sendMessage and getMe answer as before). */
  failNextGetChat(error: { code: number; description: string; retryAfter?: number }): void;
  /** A public chat `@name` and its id: getChat answers it, and messages to either name it. */
  addChat(username: string, id: number): void;
  close(): Promise<void>;
}

/** The stand-in bot's @username (getMe). */
export const BOT_USERNAME = 'b24hooks_test_bot';

/**
 * A local stand-in for the Telegram Bot API: `POST /bot<token>/sendMessage` with a JSON body,
 * answered in the Bot API's shape (`{ok, result}` or `{ok: false, error_code, description}`).
 * A text with a `parse_mode` is parsed as the Bot API does; markup that does not parse is
 * refused with 400 "can't parse entities", and `result.text` is the text without markup.
 */
export async function startTelegramStandin(token = '123456:TEST-token'): Promise<TelegramStandin> {
  const sent: SentMessage[] = [];
  let nextError: { code: number; description: string; retryAfter?: number } | undefined;
  let nextGetChatError: { code: number; description: string; retryAfter?: number } | undefined;
  const chats = new Map<string, number>();
  const chatOf = (chatId: string | number) =>
    typeof chatId === 'string' && chatId.startsWith('@')
      ? (chats.get(chatId.toLowerCase()) ?? chatId)
      : chatId;
  const fail = (code: number, description: string, retryAfter?: number): SinkReply => ({
    status: code,
    body: {
      ok: false,
      error_code: code,
      description,
      ...(retryAfter !== undefined ? { parameters: { retry_after: retryAfter } } : {}),
    },
  });
  const sink = await startHttpSink((req) => {
    const m = /^\/bot([^/]+)\/(sendMessage|getChat|getMe)$/.exec(req.url);
    if (!m || req.method !== 'POST') return fail(404, 'Not Found');
    if (m[1] !== token) return fail(401, 'Unauthorized');
    // https://core.telegram.org/bots/api#getme: the bot as a User.
    if (m[2] === 'getMe') {
      return {
        body: {
          ok: true,
          result: { id: 7000001, is_bot: true, first_name: 'b24hooks', username: BOT_USERNAME },
        },
      };
    }
    if (m[2] === 'getChat' && nextGetChatError) {
      const e = nextGetChatError;
      nextGetChatError = undefined;
      return fail(e.code, e.description, e.retryAfter);
    }
    if (m[2] === 'getChat') {
      const { chat_id: asked } = JSON.parse(req.body) as { chat_id: string | number };
      const id = chatOf(asked);
      if (typeof id !== 'number' && !/^-?\d+$/.test(String(id))) {
        return fail(400, 'Bad Request: chat not found');
      }
      // A chat known by an @name is public (Bot API ChatFullInfo: `username` only then, for
      // a group or channel); any other id is a private group.
      const username = [...chats].find(([, v]) => v === Number(id))?.[0];
      return {
        body: {
          ok: true,
          result: username
            ? { id: Number(id), type: 'channel', username: username.slice(1) }
            : { id: Number(id), type: 'supergroup' },
        },
      };
    }
    if (nextError) {
      const e = nextError;
      nextError = undefined;
      return fail(e.code, e.description, e.retryAfter);
    }
    let msg: SentMessage;
    try {
      msg = JSON.parse(req.body) as SentMessage;
    } catch {
      return fail(400, 'Bad Request: invalid JSON');
    }
    if (msg.chat_id === undefined || msg.chat_id === '')
      return fail(400, 'Bad Request: chat_id is empty');
    if (!msg.text) return fail(400, 'Bad Request: message text is empty');
    const read = readMarkup(msg.text, msg.parse_mode);
    if (!read.ok) return fail(400, read.description);
    msg = { ...msg, plain: read.plain };
    sent.push(msg);
    return {
      body: {
        ok: true,
        result: {
          message_id: sent.length,
          chat: { id: chatOf(msg.chat_id) },
          date: 1_800_000_000,
          text: msg.plain,
        },
      },
    };
  });
  return {
    url: sink.url,
    token,
    sent,
    sink,
    failNextGetChat(error) {
      nextGetChatError = error;
    },
    failNext(error) {
      nextError = error;
    },
    addChat(username, id) {
      chats.set(username.toLowerCase(), id);
    },
    close: () => sink.close(),
  };
}
