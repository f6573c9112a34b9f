import type { ServerParts } from '../../server.js';

/**
 * Feature modules beyond the core register their routes (and shutdown hooks) here, one
 * line each, so they stay out of each other's files.
 */
export async function registerFeatures(parts: ServerParts): Promise<void> {
  void parts;
}
