/**
 * Sign-in. The ready URL carries `?token=`; a share link carries `?cohost=`. Either is moved
 * into sessionStorage (this tab only, never a cookie, so previews and other tabs never see
 * it) and removed from the address bar, so it does not linger in history or screenshots.
 */
const TOKEN_KEY = 'session-manager.token';
const COHOST_KEY = 'session-manager.cohost';

export interface Claims {
  sub: string;
  orgId: string | undefined;
  roles: string[];
  exp: number | undefined;
}

export type Credentials =
  | { kind: 'token'; token: string; claims: Claims; admin: boolean }
  | { kind: 'cohost'; cohost: string };

/** Move `?token=` / `?cohost=` from the URL into sessionStorage. */
export function takeCredentialsFromUrl(): void {
  const url = new URL(location.href);
  const token = url.searchParams.get('token');
  const cohost = url.searchParams.get('cohost');
  if (!token && !cohost) return;
  if (token) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.removeItem(COHOST_KEY);
  } else if (cohost) {
    sessionStorage.setItem(COHOST_KEY, cohost);
    sessionStorage.removeItem(TOKEN_KEY);
  }
  url.searchParams.delete('token');
  url.searchParams.delete('cohost');
  history.replaceState(history.state, '', url.pathname + (url.search === '?' ? '' : url.search) + url.hash);
}

export function credentials(): Credentials | undefined {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    const claims = decodeClaims(token);
    return { kind: 'token', token, claims, admin: claims.roles.includes('admin') };
  }
  const cohost = sessionStorage.getItem(COHOST_KEY);
  if (cohost) return { kind: 'cohost', cohost };
  return undefined;
}

export function signIn(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
  sessionStorage.removeItem(COHOST_KEY);
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(COHOST_KEY);
}

/**
 * The token's claims, read (not verified: the server verifies) to shape the page: which org
 * to watch and whether admin controls show. The org claim name is configurable on the
 * server (JWT_ORG_CLAIM); the usual spellings are tried.
 */
export function decodeClaims(token: string): Claims {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const p = JSON.parse(json) as Record<string, unknown>;
    const org = p.orgId ?? p.org ?? p.org_id ?? p.organization;
    return {
      sub: typeof p.sub === 'string' ? p.sub : '',
      orgId: typeof org === 'string' ? org : undefined,
      roles: Array.isArray(p.roles) ? p.roles.filter((r): r is string => typeof r === 'string') : [],
      exp: typeof p.exp === 'number' ? p.exp : undefined,
    };
  } catch {
    return { sub: '', orgId: undefined, roles: [], exp: undefined };
  }
}
