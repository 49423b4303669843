import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

/**
 * Encryption of secrets at rest (OAuth tokens, webhook URLs): AES-256-GCM with a random
 * 96-bit IV. Stored form: `v1.<base64url(iv | tag | ciphertext)>`.
 */
export interface SecretBox {
  encrypt(plain: string): string;
  decrypt(stored: string): string;
  /** Keyed digest for values we only compare (application tokens): HMAC-SHA256, hex. */
  digest(value: string): string;
}

/**
 * The digest key a database starts with, derived from its first encryption key. It is kept
 * (encrypted) in the key check, so that rotating the encryption key leaves the stored
 * digests valid (server/keys/).
 */
export function deriveDigestKey(key: Buffer): Buffer {
  return createHmac('sha256', key).update('b24hooks digest key').digest();
}

export function createSecretBox(key: Buffer, digestKey: Buffer = deriveDigestKey(key)): SecretBox {
  if (key.length !== 32) throw new Error('the token encryption key must be 32 bytes');
  const macKey = digestKey;
  return {
    encrypt(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return `v1.${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url')}`;
    },
    decrypt(stored) {
      if (!stored.startsWith('v1.')) throw new Error('unknown secret format');
      const raw = Buffer.from(stored.slice(3), 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    },
    digest(value) {
      return createHmac('sha256', macKey).update(value, 'utf8').digest('hex');
    },
  };
}

/** Constant-time string comparison (length leaks, content does not). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  if (x.length !== y.length) {
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}
