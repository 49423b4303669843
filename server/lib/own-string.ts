/**
 * A copy of `s` that shares no memory with the text it was cut from. V8 keeps a substring
 * (13 characters or more) as a view of its parent, so a member_id or token cut from a
 * delivery and kept as a cache key keeps the whole raw body (up to BODY_LIMIT) alive with
 * it, and those keys are a stranger's choice. Copy where a string is kept, not where it is
 * read: a cache hit, the usual case, then costs nothing.
 */
export const ownString = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');
