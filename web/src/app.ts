import type { Api } from './api.js';
import type { Credentials } from './auth.js';
import type { Socket } from './socket.js';
import type { SessionStore } from './store.js';

/** What every view gets. */
export interface App {
  api: Api;
  socket: Socket;
  creds: Credentials;
  store: SessionStore;
  /** Navigate within the page (hash route). */
  go(route: string): void;
}

/** A mounted view; returns its cleanup. */
export type View = (app: App, root: HTMLElement, params: string[]) => () => void;

export function isGuest(app: App): boolean {
  return app.creds.kind === 'cohost';
}

export function isAdmin(app: App): boolean {
  return app.creds.kind === 'token' && app.creds.admin;
}
