import { createHmac } from 'node:crypto';

/**
 * The signing key of a Standard Webhooks secret: `whsec_<base64>` is decoded (the format
 * Svix and standard-webhooks libraries hand out); any other string is used as UTF-8 bytes.
 */
export function signingKey(secret: string): Buffer {
  return secret.startsWith('whsec_')
    ? Buffer.from(secret.slice(6), 'base64')
    : Buffer.from(secret, 'utf8');
}

/**
 * Headers that sign `body` the Standard Webhooks way
 * (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, timestamp in seconds.
 */
export function standardWebhookHeaders(
  secret: string,
  id: string,
  now: Date,
  body: string,
): Record<string, string> {
  const timestamp = String(Math.floor(now.getTime() / 1000));
  const sig = createHmac('sha256', signingKey(secret))
    .update(`${id}.${timestamp}.${body}`)
    .digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${sig}` };
}
