import { expect, it } from 'vitest';
import { Router } from '../../src/http/router.js';

it('matches literals, params and a trailing wildcard; tells 404 from 405 and bad encoding', () => {
  const r = new Router();
  const h = () => {};
  r.get('/api/sessions/by-user/:userId', h).get('/api/sessions/:id', h).post('/api/sessions', h).get('/preview/:org/:project/*', h, 'public');
  const byUser = r.match('GET', '/api/sessions/by-user/bob');
  expect(typeof byUser === 'object' && byUser.params).toEqual({ userId: 'bob' });
  const one = r.match('GET', '/api/sessions/abc%20d');
  expect(typeof one === 'object' && one.params).toEqual({ id: 'abc d' });
  const prev = r.match('GET', '/preview/acme/site/css/a%2Fb.css');
  expect(typeof prev === 'object' && [prev.params, prev.rest, prev.auth]).toEqual([{ org: 'acme', project: 'site' }, 'css/a%2Fb.css', 'public']);
  expect(r.match('DELETE', '/api/sessions')).toBe('method');
  expect(r.match('GET', '/nope')).toBe('not_found');
  expect(r.match('GET', '/api/sessions/%E0%A4%A')).toBe('bad_path');
  expect(typeof r.match('HEAD', '/api/sessions/x')).toBe('object');
});
