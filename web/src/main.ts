import '@xterm/xterm/css/xterm.css';
import './styles.css';
import { Api } from './api.js';
import { credentials, signIn, signOut, takeCredentialsFromUrl, type Credentials } from './auth.js';
import type { App, View } from './app.js';
import { h } from './dom.js';
import { Socket, type SocketState } from './socket.js';
import { SessionStore } from './store.js';
import { sessionsView } from './views/sessions.js';
import { sessionPage } from './views/session-page.js';
import { jobsView } from './views/jobs.js';
import { resourcesView } from './views/resources.js';

const ROUTES: Array<{ re: RegExp; view: View; nav?: string; guest?: boolean }> = [
  { re: /^\/(?:sessions)?$/, view: sessionsView, nav: 'sessions', guest: true },
  { re: /^\/s\/([0-9a-fA-F-]{36})(?:\/([a-z]+))?$/, view: sessionPage, nav: 'sessions', guest: true },
  { re: /^\/jobs$/, view: jobsView, nav: 'jobs' },
  { re: /^\/resources$/, view: resourcesView, nav: 'resources' },
];

const STATE_TEXT: Record<SocketState, string> = {
  connecting: 'connecting…',
  open: 'live',
  reconnecting: 'reconnecting…',
  unauthorized: 'signed out',
  revoked: 'link revoked',
  stopped: 'offline',
};

function boot(): void {
  takeCredentialsFromUrl();
  const creds = credentials();
  if (!creds) return signInScreen();
  start(creds);
}

function signInScreen(message?: string): void {
  const input = h('textarea', { rows: 4, placeholder: 'Paste a token (the ready URL printed at start carries one)', 'aria-label': 'Token', class: 'token-input' });
  const form = h('form', { class: 'card signin' },
    h('h1', { text: 'session-manager' }),
    h('p', { class: 'muted', text: 'Open the ready URL the server printed at start (it signs you in), or paste a token. It is kept in this tab only.' }),
    message ? h('p', { class: 'error-text', role: 'alert', text: message }) : null,
    input,
    h('button', { type: 'submit', class: 'primary', text: 'Sign in' }),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!input.value.trim()) return;
    signIn(input.value);
    location.reload();
  });
  document.body.replaceChildren(h('main', { class: 'center' }, form));
}

function start(creds: Credentials): void {
  const api = new Api(creds);
  const socket = new Socket(creds);
  const store = new SessionStore(api, socket, creds);
  const app: App = { api, socket, creds, store, go: (route) => { location.hash = `#${route}`; } };
  const guest = creds.kind === 'cohost';

  const dot = h('span', { class: 'conn', role: 'status', 'aria-live': 'polite' });
  const who = creds.kind === 'token'
    ? `${creds.claims.sub || 'user'}${creds.claims.orgId ? ` @ ${creds.claims.orgId}` : ''}${creds.admin ? ' · admin' : ''}`
    : 'guest';
  const nav = h('nav', { class: 'tabs' },
    h('a', { href: '#/sessions', 'data-nav': 'sessions', text: 'Sessions' }),
    guest ? null : h('a', { href: '#/jobs', 'data-nav': 'jobs', text: 'Jobs' }),
    guest ? null : h('a', { href: '#/resources', 'data-nav': 'resources', text: 'Resources' }),
  );
  const main = h('main', { class: 'content' });
  document.body.replaceChildren(
    h('header', { class: 'top' },
      h('a', { href: '#/sessions', class: 'brand', text: 'session-manager' }),
      nav,
      h('span', { class: 'spacer' }),
      guest ? h('span', { class: 'badge readonly', id: 'readonly-badge', title: 'This share link may only watch', text: 'read-only' }) : null,
      dot,
      h('span', { class: 'who muted', text: who }),
      h('button', { class: 'small', text: 'Sign out', onclick: () => { signOut(); location.href = location.pathname; } }),
    ),
    main,
  );

  const paintState = (s: SocketState) => {
    dot.textContent = STATE_TEXT[s];
    dot.className = `conn conn-${s}`;
    if (s === 'unauthorized') {
      socket.stop();
      if (guest) {
        signOut();
        document.body.replaceChildren(h('main', { class: 'center' }, h('div', { class: 'card' }, h('h1', { text: 'Share link not valid' }), h('p', { text: 'This link is invalid, expired or was revoked. Ask the host for a new one.' }))));
      } else {
        signOut();
        signInScreen('The token was refused (invalid or expired). Sign in again.');
      }
    }
    if (s === 'revoked') {
      signOut();
      document.body.replaceChildren(h('main', { class: 'center' }, h('div', { class: 'card' }, h('h1', { text: 'Share link revoked' }), h('p', { text: 'The host revoked this link.' }))));
    }
  };
  socket.onState(paintState);
  api.onUnauthorized(() => paintState('unauthorized'));

  let cleanup: (() => void) | undefined;
  const route = () => {
    const path = location.hash.replace(/^#/, '') || '/';
    cleanup?.();
    cleanup = undefined;
    main.replaceChildren();
    for (const r of ROUTES) {
      const m = r.re.exec(path);
      if (!m || (guest && !r.guest)) continue;
      for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.nav === r.nav);
      cleanup = r.view(app, main, m.slice(1).filter((x): x is string => x !== undefined));
      return;
    }
    main.append(h('p', { class: 'muted', text: 'Nothing here. ' }, h('a', { href: '#/sessions', text: 'Back to sessions' })));
  };
  window.addEventListener('hashchange', route);
  socket.start();
  paintState(socket.state);
  void store.load().then(() => {
    // A share link that names exactly one live session opens it.
    if (guest && (location.hash === '' || location.hash === '#/' || location.hash === '#/sessions')) {
      const live = store.list().filter((s) => s.status === 'running' || s.status === 'starting');
      if (live.length === 1) app.go(`/s/${live[0]!.id}`);
    }
  });
  route();
}

boot();
