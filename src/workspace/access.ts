import { AppError } from '../errors.js';
import { assertOrgAccess, assertWriter } from '../auth/principal.js';
import { assertName } from '../validate.js';
import type { HttpContext } from '../http/context.js';

export interface ProjectRef {
  orgId: string;
  projectName: string;
}

/**
 * The `:orgId/:projectName` of a project route, validated first (a malformed name is 400
 * before any authorization), then checked against the caller: the org must be the token's
 * (or the caller an admin); a share-link guest reaches only its own project and may not
 * write.
 */
export function projectParams(ctx: HttpContext, opts: { write: boolean }): ProjectRef {
  const orgId = assertName(ctx.params.orgId, 'orgId');
  const projectName = assertName(ctx.params.projectName, 'projectName');
  const p = ctx.who;
  assertOrgAccess(p, orgId);
  if (p.kind === 'guest' && p.scope?.projectName !== projectName) {
    throw new AppError('SM_ERR_FORBIDDEN', 'A share link may only watch its project.');
  }
  if (opts.write) assertWriter(p);
  return { orgId, projectName };
}

/** The project topic on the Bus (DESIGN §4). */
export function projectTopic(orgId: string, projectName: string): string {
  return `project:${orgId}/${projectName}`;
}
