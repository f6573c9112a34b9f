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
  void parts;
}
