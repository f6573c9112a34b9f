import path from 'node:path';
import { AppError } from '../errors.js';
import { isInside } from '../workspace/paths.js';

const MAX_URL = 2048;
/** scp-like `user@host:path` (what GitHub shows for SSH). */
const SCP_RE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!\/\/)[A-Za-z0-9._~\/-][^\s]*$/;
const NETWORK_SCHEMES = new Set(['https:', 'http:', 'ssh:', 'git:']);

export interface UrlPolicy {
  /** `file://` remotes (tests, single-user setups). Never inside the workspaces or data folder. */
  allowFile: boolean;
  /** Folders a `file://` URL may not point into. */
  forbiddenRoots: string[];
}

/**
 * Check a remote URL before git sees it. Allowed: https, http, ssh, git and scp-like
 * `user@host:path`; `file://` only when the policy allows it and outside the server's own
 * folders. Refused: local paths, `ext::`/`fd::` transports, anything starting with `-`,
 * whitespace or control characters, and credentials inside the URL (a password there would
 * land in `.git/config`: tokens go in `token`).
 */
export function assertRemoteUrl(v: unknown, policy: UrlPolicy, field = 'url'): string {
  const bad = (why: string): never => {
    throw new AppError('SM_ERR_GIT_BAD_URL', `"${field}" ${why}.`, { details: { field } });
  };
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_URL) return bad(`must be a URL of at most ${MAX_URL} characters`);
  if (/[\s\u0000-\u001f\u007f]/.test(v)) bad('may not hold whitespace or control characters');
  if (SCP_RE.test(v)) return v;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return bad('must be an https, http, ssh or git URL (or user@host:path)');
  }
  if (u.password) bad('may not carry a password or token; send it as "token"');
  if (NETWORK_SCHEMES.has(u.protocol)) {
    if (!u.hostname) bad('needs a host');
    return v;
  }
  if (u.protocol === 'file:') {
    if (!policy.allowFile) bad('may not be a file:// URL on this server');
    if (u.host) bad('must be file:///absolute/path');
    const p = path.resolve(decodeURIComponent(u.pathname));
    if (policy.forbiddenRoots.some((r) => isInside(path.resolve(r), p) || isInside(p, path.resolve(r)))) bad('may not point into the server\'s own folders');
    return v;
  }
  return bad('must be an https, http, ssh or git URL (or user@host:path)');
}

/** A token for one command: printable, no line breaks (it is answered to a prompt). */
export function assertToken(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' || v.length > 4096 || /[\s\u0000-\u001f\u007f]/.test(v)) {
    throw new AppError('SM_ERR_VALIDATION', '"token" must be a string of at most 4096 printable characters.', { details: { field: 'token' } });
  }
  return v;
}
