import { ApiError } from '../api.js';
import { h } from '../dom.js';

/** What a tab shows when its routes are missing on this server (404) or refused. */
export function unavailable(what: string, err: unknown): HTMLElement {
  const e = err instanceof ApiError ? err : undefined;
  if (e?.status === 404) {
    return h('div', { class: 'card unavailable', 'data-unavailable': 'true' },
      h('strong', { text: `${what}: not available` }),
      h('p', { class: 'muted', text: `This server does not offer it for this project (${e.message})` }),
    );
  }
  if (e?.status === 403) return h('div', { class: 'card unavailable' }, h('strong', { text: `${what}: not allowed` }), h('p', { class: 'muted', text: e.message }));
  return h('div', { class: 'card error' }, h('strong', { text: `${what}: failed` }), h('p', { text: (err as Error).message }));
}
