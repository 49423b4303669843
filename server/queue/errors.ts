/**
 * The retry error classes moved to server/lib/retry-errors.ts (they are thrown below the
 * queue, by the REST client and the actions). Kept only for server/bitrix/, which switches to
 * the new path with its own rework; import from server/lib/retry-errors.ts everywhere else.
 */
export { PausedError, PermanentError, RetryableError } from '../lib/retry-errors.js';
