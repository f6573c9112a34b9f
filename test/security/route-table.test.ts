import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fillPath, routeKey, ROUTES, scanRoutes } from './route-table.js';
import { errorCode, makeWorld, request, type World } from './world.js';

describe('the route table', () => {
  it('lists exactly the routes the route modules register, with their auth modes', () => {
    const scanned = scanRoutes();
    expect(scanned.length).toBeGreaterThan(50);
    const inCode = Object.fromEntries(scanned.map((x) => [routeKey(x.method, x.pattern), x.auth]));
    const inTable = Object.fromEntries(ROUTES.map((x) => [routeKey(x.method, x.pattern), x.auth]));
    expect(inTable).toEqual(inCode);
  });
});

describe('every route is live and refuses a missing token', () => {
  let world: World;
  beforeAll(async () => {
    world = await makeWorld();
  });
  afterAll(async () => {
    await world?.s.stop();
  });

  it('user and any routes answer 401 unauthorized without a token; public routes never ask for one', async () => {
    const got: Array<[string, string]> = [];
    const want: Array<[string, string]> = [];
    for (const route of ROUTES) {
      const key = routeKey(route.method, route.pattern);
      const body = route.body ? JSON.stringify(route.body(world.w)) : undefined;
      const res = await request(world.s, route.method, fillPath(route.pattern, world.w), { body });
      const code = errorCode(res.text);
      got.push([key, route.auth === 'public' ? (res.status === 401 || res.status === 405 || res.status <= 0 ? `${res.status}` : 'answered') : `${res.status} ${code}`]);
      want.push([key, route.auth === 'public' ? 'answered' : '401 unauthorized']);
    }
    expect(got).toEqual(want);
  });
});
