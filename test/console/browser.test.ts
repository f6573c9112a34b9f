/**
 * The web console in headless Chromium (the Debian package, driven by playwright-core; no
 * browser is downloaded): sign-in from the ready URL, a bash session typed into through
 * xterm.js, the same screen after a reload, a live sessions table, resize, a reconnect that
 * resumes by offset, the tabs, and a read-only guest. Screenshots go to test-results/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT, api, startServer, until, type TestServer } from '../helpers/server.js';
import { CutProxy } from './proxy.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const RESULTS = path.join(ROOT, 'test-results');

/** Bound for each wait on the server or the browser (a shared 2-core machine can be slow). */
const WAIT_MS = 20_000;

let s: TestServer;
let browser: Browser;
let token: string;
let adminToken: string;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (the tests never download a browser)`);
  mkdirSync(RESULTS, { recursive: true });
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
  adminToken = s.adminToken;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});
afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await s?.stop();
});

async function newPage(viewport = { width: 1280, height: 800 }): Promise<Page> {
  const ctx = await browser.newContext({ viewport });
  contexts.push(ctx);
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error('pageerror:', e.message));
  page.on('dialog', (d) => void d.accept());
  return page;
}

/** The terminal's visible rows as text (xterm's DOM renderer), trailing blanks dropped. */
function screen(page: Page): Promise<string> {
  return page.evaluate(() =>
    [...document.querySelectorAll('.xterm-rows > div')]
      .map((d) => (d.textContent ?? '').replace(/\u00a0/g, ' ').trimEnd())
      .join('\n')
      .replace(/\n+$/, ''),
  );
}

function exactLines(text: string, line: string): number {
  return text.split('\n').filter((l) => l === line).length;
}

async function waitScreen(page: Page, pred: (t: string) => boolean, what: string, timeoutMs = WAIT_MS): Promise<string> {
  try {
    return await until(async () => {
      const t = await screen(page);
      return pred(t) ? t : undefined;
    }, what, timeoutMs, 50);
  } catch (err) {
    throw new Error(`${(err as Error).message}; screen:\n${await screen(page)}`);
  }
}

/** Wait for bash's prompt at the end of the screen. */
const prompt = (t: string) => /[#$]$/.test(t);

async function typeLine(page: Page, text: string): Promise<void> {
  await page.click('.terminal');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

async function createViaApi(project: string, tok = token): Promise<string> {
  const r = await api(s, 'POST', '/api/sessions', { token: tok, body: { orgId: 'acme', projectName: project, agent: 'bash' } });
  expect(r.status).toBe(201);
  return r.body.id as string;
}

describe('web console', () => {
  it('signs in from the ready URL: token moved to sessionStorage, gone from the address bar, no cookie', async () => {
    const page = await newPage();
    await page.goto(`${s.url}/?token=${token}#/sessions`);
    await page.waitForSelector('table.sessions');
    expect(page.url()).toBe(`${s.url}/#/sessions`);
    expect(await page.evaluate(() => sessionStorage.getItem('session-manager.token'))).toBe(token);
    expect(await page.evaluate(() => document.cookie)).toBe('');
    expect(await page.textContent('header')).toContain('alice @ acme');
    await until(async () => (await page.textContent('.conn')) === 'live', 'the socket to be live', WAIT_MS);
    // A new tab without the token asks for one.
    const other = await newPage();
    await other.goto(`${s.url}/`);
    await other.waitForSelector('form.signin');
    // A bad token is refused and the sign-in form says so.
    await other.goto(`${s.url}/?token=not-a-token`);
    await other.waitForSelector('form.signin .error-text');
  });

  it('creates a bash session, types `echo from-browser`, sees it; a reload shows the same screen', async () => {
    const page = await newPage();
    await page.goto(`${s.url}/?token=${token}`);
    await page.waitForSelector('table.sessions');
    await page.click('button:has-text("New session")');
    await page.fill('form.create input[name=project]', 'browser');
    await page.click('form.create button[type=submit]');
    await page.waitForURL(/#\/s\/[0-9a-f-]{36}$/);
    const id = /#\/s\/([0-9a-f-]{36})/.exec(page.url())![1]!;
    await waitScreen(page, prompt, 'the bash prompt');
    await typeLine(page, 'echo from-browser');
    const before = await waitScreen(page, (t) => exactLines(t, 'from-browser') === 1 && prompt(t), 'from-browser rendered');
    expect(before).toMatch(/echo from-browser\nfrom-browser\n/);
    await page.screenshot({ path: path.join(RESULTS, 'console-terminal.png') });

    await page.reload();
    const after = await waitScreen(page, (t) => t === before, 'the same screen after reload');
    expect(after).toBe(before);
    const stats = await page.evaluate(() => window.__smTerminal?.stats);
    expect(stats?.firstOutputAt).toBeGreaterThan(0);
    console.log(`attach → first output on reload: ${(stats!.firstOutputAt! - stats!.attachSentAt!).toFixed(1)} ms (page start → first output ${stats!.firstOutputAt!.toFixed(0)} ms)`);
    const rec = (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
    expect(rec).toMatchObject({ status: 'running', projectName: 'browser', userId: 'alice', viewers: 1 });
  });

  it('keeps the sessions table live from org events and kills from the table', async () => {
    const page = await newPage();
    await page.goto(`${s.url}/?token=${token}#/sessions`);
    await page.waitForSelector('table.sessions');
    await until(async () => (await page.textContent('.conn')) === 'live', 'the socket to be live', WAIT_MS);
    const id = await createViaApi('live-table');
    const row = page.locator(`tr[data-id="${id}"]`);
    // The row appears with the created event (queued) and turns running with the updates
    // that follow it on the same socket: wait for the last one, then read the row.
    await row.locator('.badge.status-running').waitFor();
    expect(await row.textContent()).toMatch(/running.*bash.*live-table.*alice/);
    // Killed elsewhere: the row follows without a reload.
    const id2 = await createViaApi('live-table');
    await page.locator(`tr[data-id="${id2}"]`).waitFor();
    await api(s, 'DELETE', `/api/sessions/${id2}`, { token });
    await page.locator(`tr[data-id="${id2}"] .badge.status-killed`).waitFor();
    // Killed from the table.
    await row.locator('button:has-text("Kill")').click();
    await page.locator(`tr[data-id="${id}"] .badge.status-killed`).waitFor();
    expect((await api(s, 'GET', `/api/sessions/${id}`, { token })).body.status).toBe('killed');
    // The filter narrows the table.
    await page.fill('input.filter', id2.slice(0, 8));
    await until(async () => (await page.locator('table.sessions tbody tr').count()) === 1, 'the filter to apply', WAIT_MS);
    await page.screenshot({ path: path.join(RESULTS, 'console-sessions.png') });
  });

  it('queues a one-off job from the form', async () => {
    const page = await newPage();
    await page.goto(`${s.url}/?token=${token}`);
    await page.click('button:has-text("New session")');
    await page.fill('form.create input[name=project]', 'jobs-ui');
    await page.check('form.create input[value=one]');
    await page.fill('form.create input[name=command]', 'echo one-off-from-ui');
    await page.click('form.create button[type=submit]');
    const jobs = await until(async () => {
      const r = await api(s, 'GET', '/api/sessions?projectName=jobs-ui', { token });
      return r.body.items.find((x: any) => x.status === 'exited');
    }, 'the one-off to run', WAIT_MS);
    expect(jobs).toMatchObject({ agent: 'script', type: 'one_off', exitCode: 0 });
    await page.locator(`tr[data-id="${jobs.id}"] .badge.status-exited`).waitFor();
  });

  it('resizes the pty when the window resizes', async () => {
    const id = await createViaApi('resize');
    const page = await newPage({ width: 1280, height: 800 });
    await page.goto(`${s.url}/?token=${token}#/s/${id}`);
    await waitScreen(page, prompt, 'the prompt');
    const first = await until(async () => {
      const r = (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
      return r.cols !== 80 ? r : undefined;
    }, 'the first resize', WAIT_MS);
    await page.setViewportSize({ width: 800, height: 560 });
    const second = await until(async () => {
      const r = (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
      return r.cols < first.cols && r.rows < first.rows ? r : undefined;
    }, 'a smaller pty after the window shrank', WAIT_MS);
    await typeLine(page, 'stty size');
    await waitScreen(page, (t) => exactLines(t, `${second.rows} ${second.cols}`) === 1, 'stty to agree');
  });

  it('reconnects after a network drop and resumes by offset: no line lost, none repeated', async () => {
    const proxy = await CutProxy.start(s.port);
    try {
      const id = await createViaApi('reconnect');
      const page = await newPage();
      await page.goto(`${proxy.url}/?token=${token}#/s/${id}`);
      await waitScreen(page, prompt, 'the prompt');
      await typeLine(page, 'echo line-$((0+1))');
      await waitScreen(page, (t) => exactLines(t, 'line-1') === 1, 'line-1');
      await api(s, 'POST', `/api/sessions/${id}/input`, { token, body: { data: 'sleep 0.4; echo during-$((1+1)); echo during-$((1+2))' } });
      expect(proxy.cut(1500)).toBeGreaterThan(0);
      await until(async () => (await page.textContent('.conn')) !== 'live', 'the page to notice the drop', WAIT_MS);
      await until(async () => (await page.textContent('.conn')) === 'live', 'the page to reconnect', 20_000);
      await waitScreen(page, (t) => exactLines(t, 'during-3') === 1, 'output made while away');
      await typeLine(page, 'echo line-$((1+1))');
      const t = await waitScreen(page, (x) => exactLines(x, 'line-2') === 1, 'line-2 after the reconnect');
      for (const l of ['line-1', 'during-2', 'during-3', 'line-2']) expect(exactLines(t, l), `${l} in:\n${t}`).toBe(1);
      const stats = await page.evaluate(() => window.__smTerminal?.stats);
      expect(stats?.attaches).toBeGreaterThanOrEqual(2);
    } finally {
      await proxy.close();
    }
  });

  it('tabs: logs, jobs, resources (admin: limits, pause/resume, sparklines); workspace and planner load or say "not available"', async () => {
    const id = await createViaApi('tabs', adminToken);
    await api(s, 'POST', `/api/sessions/${id}/input`, { token: adminToken, body: { data: 'echo in-the-log' } });
    const page = await newPage();
    await page.goto(`${s.url}/?token=${adminToken}#/s/${id}`);
    await waitScreen(page, (t) => exactLines(t, 'in-the-log') === 1, 'the output');
    await page.click('button[data-tab=logs]');
    await until(async () => ((await page.textContent('pre.logs')) ?? '').includes('in-the-log'), 'the log tail', WAIT_MS);
    expect(page.url()).toMatch(/#\/s\/[0-9a-f-]{36}\/logs$/);
    for (const tab of ['workspace', 'planner']) {
      await page.click(`button[data-tab=${tab}]`);
      const panel = page.locator(`.panel-${tab}`);
      await until(async () => {
        const text = (await panel.textContent()) ?? '';
        return !/Loading/.test(text) && text.length > 0;
      }, `the ${tab} tab to load`, WAIT_MS);
      expect(await panel.locator('.card.error').count(), `${tab}: ${await panel.textContent()}`).toBe(0);
      const unavailable = await panel.locator('[data-unavailable]').count();
      if (unavailable) expect(await panel.textContent()).toMatch(/not available/);
    }
    await page.click('a[data-nav=jobs]');
    await page.locator(`table.jobs a[href="#/s/${id}"]`).first().waitFor();
    await page.click('a[data-nav=resources]');
    await page.locator('input[aria-label="Max concurrent sessions"]').waitFor();
    await page.click('button:has-text("Pause admissions")');
    await page.locator('.badge:has-text("paused")').waitFor();
    expect((await api(s, 'GET', '/api/resources/limits', { token: adminToken })).body.paused).toBe(true);
    await page.click('button:has-text("Resume admissions")');
    await page.locator('.badge:has-text("admitting")').waitFor();
    expect(await page.locator('.spark').count()).toBe(5);
    await page.locator('.sparkline polyline').first().waitFor({ state: 'attached', timeout: 20_000 });
    await page.screenshot({ path: path.join(RESULTS, 'console-resources.png') });
    // A builder (not admin) sees no limits form.
    const builder = await newPage();
    await builder.goto(`${s.url}/?token=${token}#/resources`);
    await builder.locator('text=Limits and pause/resume are for admins.').waitFor();
  });

  it('the planner board follows planner:updated live, and ticking a criterion writes it', async () => {
    const id = await createViaApi('board');
    const put = await api(s, 'PUT', '/api/planner/acme/board', {
      token,
      body: { cards: [{ id: 'c1', title: 'First card', status: 'todo', criteria: [{ id: 'a1', text: 'it works', done: false }] }] },
    });
    const page = await newPage();
    if (put.status === 404) {
      console.log('note: /api/planner is not available here; checked that the tab says so');
      await page.goto(`${s.url}/?token=${token}#/s/${id}/planner`);
      await page.locator('.panel-planner [data-unavailable]').waitFor();
      return;
    }
    expect(put.status, put.text).toBe(200);
    await page.goto(`${s.url}/?token=${token}#/s/${id}/planner`);
    const card = page.locator('.planner-card[data-card="c1"]');
    await card.waitFor();
    expect(await page.locator('.column', { has: card }).locator('h3').textContent()).toMatch(/^todo/);
    // Changed elsewhere: the board follows without a reload.
    expect((await api(s, 'PATCH', '/api/planner/acme/board/cards/c1', { token, body: { status: 'done' } })).status).toBe(200);
    await until(async () => /^done/.test((await page.locator('.column', { has: page.locator('.planner-card[data-card="c1"]') }).locator('h3').textContent()) ?? ''), 'the card to move to done', WAIT_MS);
    await page.locator('.planner-card[data-card="c1"] input[data-criterion="a1"]').check();
    await until(async () => (await api(s, 'GET', '/api/planner/acme/board', { token })).body.cards[0].criteria[0].done === true, 'the criterion to be saved', WAIT_MS);
  });

  it('a guest page is read-only', async () => {
    const id = await createViaApi('guest');
    await api(s, 'POST', `/api/sessions/${id}/input`, { token, body: { data: 'echo host-says-hi' } });
    const share = await api(s, 'POST', '/api/cohost/acme/guest', { token, body: {} });
    const page = await newPage();
    if (share.status === 404) {
      // No share-link routes on this server (another feature): the guest-less check. A page
      // opened with a share link it cannot verify never falls back to a builder's view.
      console.log('note: /api/cohost is not available here; checked the guest page without a valid link');
      await page.goto(`${s.url}/?cohost=not-a-real-link`);
      await page.locator('text=Share link not valid').waitFor();
      expect(page.url()).toBe(`${s.url}/`);
      expect(await page.locator('form.signin').count()).toBe(0);
      expect(await page.locator('table.sessions').count()).toBe(0);
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
      return;
    }
    expect(share.status, share.text).toBeLessThan(300);
    const link: string = share.body.token;
    await page.goto(`${s.url}/?cohost=${encodeURIComponent(link)}#/s/${id}`);
    await page.locator('#readonly-badge').waitFor();
    expect(await page.textContent('#readonly-badge')).toBe('read-only');
    expect(page.url()).not.toContain(link);
    await waitScreen(page, (t) => exactLines(t, 'host-says-hi') === 1, 'the host output for the guest');
    expect(await page.locator('button:has-text("Kill")').count()).toBe(0);
    expect(await page.locator('button:has-text("New session")').count()).toBe(0);
    // Typing does nothing: the terminal takes no input.
    await page.click('.terminal');
    await page.keyboard.type('echo guest-typed');
    await page.keyboard.press('Enter');
    await api(s, 'POST', `/api/sessions/${id}/input`, { token, body: { data: 'echo host-again' } });
    const t = await waitScreen(page, (x) => exactLines(x, 'host-again') === 1, 'the host output after the guest typed');
    expect(t).not.toContain('guest-typed');
    await page.screenshot({ path: path.join(RESULTS, 'console-guest.png') });

    // The bare link opens the project's only live session by itself.
    const home = await newPage();
    await home.goto(`${s.url}/?cohost=${encodeURIComponent(link)}`);
    await home.waitForURL(new RegExp(`#/s/${id}$`));
    await waitScreen(home, (x) => exactLines(x, 'host-again') === 1, 'the session on the bare link');
    expect(await home.locator('a[data-nav=jobs]').count()).toBe(0);

    // Revoking the link cuts the guests at once.
    expect((await api(s, 'DELETE', `/api/cohost/${encodeURIComponent(link)}`, { token })).status).toBeLessThan(300);
    await page.locator('text=Share link revoked').waitFor();
    await home.locator('text=Share link revoked').waitFor();
  });
});
