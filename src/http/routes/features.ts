import type { ServerParts } from '../../server.js';

/**
 * Feature modules beyond the core register their routes (and shutdown hooks) here, one
 * line each, so they stay out of each other's files.
 */
export async function registerFeatures(parts: ServerParts): Promise<void> {
  await import('./console.js').then((m) => m.consoleRoutes(parts)); // web control center: / and /assets/*
  await import('./cohost.js').then((m) => m.cohostRoutes(parts)); // cohost share links (issue 5)
  await import('./deploy.js').then((m) => m.deployRoutes(parts)); // deploy jobs (issue 5)
  await import('./sites.js').then((m) => m.siteRoutes(parts)); // /sites/:orgId/:projectName/* (issue 5)
  await import('./devenvs.js').then((m) => m.devEnvRoutes(parts)); // dev-envs (issue 4)
  await import('./planner.js').then((m) => m.plannerRoutes(parts)); // planner (issue 4)
  parts.conversations = await import('./conversations.js').then((m) => m.conversationRoutes(parts)); // conversations (issue 4); shared with the agent bridge
  await import('./git.js').then((m) => m.gitRoutes(parts)); // git (issue 4)
  await import('./templates.js').then((m) => m.templateRoutes(parts)); // templates (issue 4)
  await import('./preview.js').then((m) => m.previewRoutes(parts)); // /preview/:orgId/:projectName/* (issue 4)
  void parts;
}
