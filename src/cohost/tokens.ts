import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 32 random bytes (256 bits): beyond guessing, so no rate limit is needed on lookups. */
export const TOKEN_BYTES = 32;
/** base64url of 32 bytes, unpadded. */
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;
/** The id shown in the host's list: 20 hex digits (80 bits) derived from the token. */
const ID_RE = /^[0-9a-f]{20}$/;

/** A new raw share token. It is returned to the host once and never stored. */
export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

export function looksLikeToken(s: string): boolean {
  return TOKEN_RE.test(s);
}

export function looksLikeId(s: string): boolean {
  return ID_RE.test(s);
}

/** What is stored instead of the token: its SHA-256 (hex). */
export function hashToken(raw: string): string {
  return createHash('sha256').update(raw, 'utf8').digest('hex');
}

/**
 * The token's id, derived with a separate label so it reveals neither the token nor its
 * stored hash. Deriving it (instead of an index hash → id) lets any node, on any store,
 * find the record of a presented token with one read.
 */
export function tokenIdOf(raw: string): string {
  return createHash('sha256').update('cohost-id\0', 'utf8').update(raw, 'utf8').digest('hex').slice(0, 20);
}

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatches(raw: string, storedHash: string): boolean {
  const a = Buffer.from(hashToken(raw), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
