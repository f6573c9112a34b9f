import { AppError } from '../errors.js';

/** Who is calling: a builder (JWT) or a cohost guest (view-only share link). */
export interface Principal {
  kind: 'user' | 'guest' | 'agent';
  userId: string;
  /** The org claim; undefined when the token has none (then only admins reach org routes). */
  orgId: string | undefined;
  roles: string[];
  /** Guests: the one project they may watch. Agents: their project and their own session. */
  scope?: { orgId: string; projectName: string; tokenId?: string; sessionId?: string };
  /** The raw bearer token (passed to agents as SESSION_TOKEN; never logged). */
  token: string;
}

export function isAdmin(p: Principal): boolean {
  return p.kind === 'user' && p.roles.includes('admin');
}

export function canAccessOrg(p: Principal, orgId: string): boolean {
  if (p.kind !== 'user') return p.scope?.orgId === orgId;
  return isAdmin(p) || p.orgId === orgId;
}

export function assertOrgAccess(p: Principal, orgId: string): void {
  if (!canAccessOrg(p, orgId)) throw new AppError('SM_ERR_FORBIDDEN', `This token may not touch org "${orgId}".`);
}

export function assertAdmin(p: Principal): void {
  if (!isAdmin(p)) throw new AppError('SM_ERR_FORBIDDEN', 'This route needs the admin role.');
}

export function assertWriter(p: Principal): void {
  if (p.kind === 'guest') throw new AppError('SM_ERR_FORBIDDEN', 'A share link may only watch.');
}
