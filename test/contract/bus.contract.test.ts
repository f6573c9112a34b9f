/**
 * One behaviour suite for every Bus: MemoryBus, RedisBus delivering to its own node, and
 * RedisBus delivering from one node to another through a real redis-server started here.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { compareEventIds, type Bus, type BusEvent } from '../../src/bus/bus.js';
import { MemoryBus } from '../../src/bus/memory-bus.js';
import { RedisBus, type RedisBusOptions } from '../../src/bus/redis-bus.js';
import { connectRedis } from '../../src/store/redis-connect.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { serverClients, tcpHandles, waitFor, watchUnhandled, quietLog } from './wait.js';

interface Pair {
  /** Publishes. */
  pub: Bus;
  /** Subscribes (the same bus, or another node). */
  sub: Bus;
  /** Resolves once `sub`'s subscriptions are active (events published from now on arrive). */
  settle(): Promise<void>;
}

interface Backend {
  name: string;
  /** Publisher and subscriber on separate nodes: delivery is asynchronous. */
  remote: boolean;
  pair(): Promise<Pair>;
}

let redis: TestRedis;
const clients: Redis[] = [];
const buses: Bus[] = [];
const unhandled = watchUnhandled();

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  await Promise.all(buses.splice(0).map((b) => b.close()));
  await Promise.all(clients.splice(0).map((c) => c.quit().catch(() => c.disconnect())));
});

afterAll(async () => {
  await redis?.stop();
  unhandled.stop();
  expect(unhandled.errors).toEqual([]);
});

async function redisBus(prefix: string, opts: RedisBusOptions = {}): Promise<RedisBus> {
  const client = await connectRedis(redis.url, quietLog);
  if (!client) throw new Error('test redis unreachable');
  clients.push(client);
  const bus = new RedisBus(client, { prefix, ...opts });
  buses.push(bus);
  expect(await bus.ready()).toBe(true);
  return bus;
}

const backends: Backend[] = [
  {
    name: 'MemoryBus',
    remote: false,
    async pair() {
      const bus = new MemoryBus();
      buses.push(bus);
      return { pub: bus, sub: bus, settle: async () => {} };
    },
  },
  {
    name: 'RedisBus (same node)',
    remote: false,
    async pair() {
      const bus = await redisBus(`t:${randomUUID()}:`);
      return { pub: bus, sub: bus, settle: async () => void (await bus.ready()) };
    },
  },
  {
    name: 'RedisBus (node to node)',
    remote: true,
    async pair() {
      const prefix = `t:${randomUUID()}:`;
      const a = await redisBus(prefix);
      const b = await redisBus(prefix);
      return {
        pub: a,
        sub: b,
        settle: async () => {
          expect(await b.ready()).toBe(true);
        },
      };
    },
  },
];

function collect(bus: Bus, topic: string): { events: BusEvent[]; off: () => void } {
  const events: BusEvent[] = [];
  const off = bus.subscribe(topic, (e) => events.push(e));
  return { events, off };
}

for (const backend of backends) {
  describe(`Bus contract: ${backend.name}`, () => {
    it('delivers topic, name, payload and publication time', async () => {
      const { pub, sub, settle } = await backend.pair();
      const got = collect(sub, 'org:acme');
      await settle();
      await pub.publish('org:acme', 'session:created', { id: 's1', n: 1, nested: { ok: true } });
      await waitFor(() => got.events.length === 1);
      const e = got.events[0]!;
      expect(e.topic).toBe('org:acme');
      expect(e.name).toBe('session:created');
      expect(e.payload).toEqual({ id: 's1', n: 1, nested: { ok: true } });
      expect(new Date(e.at).toISOString()).toBe(e.at);
    });

    it('keeps publish order per topic, live and replayable events mixed', async () => {
      const { pub, sub, settle } = await backend.pair();
      const got = collect(sub, 'session:s1');
      await settle();
      const N = 400;
      const sends: Promise<void>[] = [];
      for (let i = 0; i < N; i++) sends.push(pub.publish('session:s1', i % 7 === 0 ? 'session:updated' : 'output', { i }));
      await Promise.all(sends);
      await waitFor(() => got.events.length === N);
      expect(got.events.map((e) => (e.payload as { i: number }).i)).toEqual([...Array(N).keys()]);
      const ids = got.events.filter((e) => e.name === 'session:updated').map((e) => e.id!);
      for (let i = 1; i < ids.length; i++) expect(compareEventIds(ids[i - 1]!, ids[i]!)).toBeLessThan(0);
    });

    it('stops delivering after unsubscribe; unsubscribing twice is harmless', async () => {
      const { pub, sub, settle } = await backend.pair();
      const kept = collect(sub, 't:kept');
      const dropped = collect(sub, 't:kept');
      const gone = collect(sub, 't:gone');
      await settle();
      dropped.off();
      dropped.off();
      gone.off();
      gone.off();
      await settle();
      await pub.publish('t:gone', 'x', 1);
      await pub.publish('t:kept', 'x', 2);
      await waitFor(() => kept.events.length === 1);
      expect(dropped.events).toEqual([]);
      expect(gone.events).toEqual([]);
      // Subscribing again after a full unsubscribe works.
      const again = collect(sub, 't:gone');
      await settle();
      await pub.publish('t:gone', 'x', 3);
      await waitFor(() => again.events.length === 1);
      expect(again.events[0]!.payload).toBe(3);
    });

    it('never leaks events across topics, and topics are not patterns', async () => {
      const { pub, sub, settle } = await backend.pair();
      const exact = collect(sub, 'project:o/p');
      const star = collect(sub, 'project:o/*');
      await settle();
      for (const t of ['project:o/p2', 'project:o/p*', 'project:o', 'PROJECT:o/p', 'org:o', 'project:o/p/', 'project:o/x']) {
        await pub.publish(t, 'x', t);
      }
      await pub.publish('project:o/p', 'x', 'marker');
      await pub.publish('project:o/*', 'x', 'star-marker');
      await waitFor(() => exact.events.length >= 1 && star.events.length >= 1);
      expect(exact.events.map((e) => e.payload)).toEqual(['marker']);
      expect(star.events.map((e) => e.payload)).toEqual(['star-marker']);
    });

    it('fans out every event, once and in order, to many subscribers', async () => {
      const { pub, sub, settle } = await backend.pair();
      const subs = Array.from({ length: 50 }, () => collect(sub, 'org:many'));
      await settle();
      for (let i = 0; i < 20; i++) void pub.publish('org:many', 'x', i);
      await waitFor(() => subs.every((s) => s.events.length >= 20));
      await pub.publish('org:many', 'end', null);
      await waitFor(() => subs.every((s) => s.events.length >= 21));
      for (const s of subs) expect(s.events.map((e) => e.payload)).toEqual([...Array(20).keys(), null]);
    });

    it('a throwing subscriber breaks neither the publisher nor other subscribers', async () => {
      const { pub, sub, settle } = await backend.pair();
      sub.subscribe('org:t', () => {
        throw new Error('subscriber bug');
      });
      const got = collect(sub, 'org:t');
      await settle();
      await expect(pub.publish('org:t', 'x', 1)).resolves.toBeUndefined();
      await pub.publish('org:t', 'x', 2);
      await waitFor(() => got.events.length === 2);
      expect(got.events.map((e) => e.payload)).toEqual([1, 2]);
    });

    it('carries large and non-ASCII payloads intact', async () => {
      const { pub, sub, settle } = await backend.pair();
      const got = collect(sub, 'session:big');
      await settle();
      const big = 'x'.repeat(1024 * 1024) + 'é漢字🙂\u0000"\\\n';
      const payload = { data: big, list: Array.from({ length: 1000 }, (_, i) => ({ i, s: `ü${i}` })) };
      await pub.publish('session:big', 'output', payload);
      await pub.publish('session:big', 'deploy:step', payload);
      await waitFor(() => got.events.length === 2, 20_000);
      expect(got.events[0]!.payload).toEqual(payload);
      expect(got.events[1]!.payload).toEqual(payload);
    });

    it('publish after close resolves and delivers nothing; close twice is safe', async () => {
      const { pub, sub, settle } = await backend.pair();
      const got = collect(sub, 'org:closed');
      await settle();
      await pub.close();
      await pub.close();
      await expect(pub.publish('org:closed', 'x', 1)).resolves.toBeUndefined();
      await expect(pub.publish('org:closed', 'deploy:step', 1)).resolves.toBeUndefined();
      const off = pub.subscribe('org:closed', () => {});
      off();
      if (backend.remote) {
        // The subscriber's node is still open: a marker from a third route proves nothing queued.
        await sub.publish('org:closed', 'marker', 2);
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(got.events.filter((e) => e.payload === 1)).toEqual([]);
    });

    it('gives replayable events ids and replays them since an id', async () => {
      const { pub, sub, settle } = await backend.pair();
      const topic = `project:o/${randomUUID().slice(0, 8)}`;
      const live = collect(sub, topic);
      await settle();
      await pub.publish(topic, 'deploy:step', { step: 'prepare' });
      await pub.publish(topic, 'output', { ignored: true });
      await pub.publish(topic, 'deploy:step', { step: 'build' });
      await pub.publish(topic, 'planner:updated', { version: 2 });
      await pub.publish(topic, 'cohost:revoked', { token: 'x' });
      await pub.publish(topic, 'deploy:step', { step: 'activate' });
      await waitFor(() => live.events.length === 6);

      const all = await sub.readSince(topic);
      expect(all.map((e) => e.name)).toEqual(['deploy:step', 'deploy:step', 'planner:updated', 'cohost:revoked', 'deploy:step']);
      expect(all.map((e) => e.payload)).toEqual([{ step: 'prepare' }, { step: 'build' }, { version: 2 }, { token: 'x' }, { step: 'activate' }]);
      for (const e of all) expect(e.topic).toBe(topic);
      // Live copies carry the same ids; live-only events carry none.
      expect(live.events.filter((e) => e.id !== undefined).map((e) => e.id)).toEqual(all.map((e) => e.id));
      expect(live.events.find((e) => e.name === 'output')!.id).toBeUndefined();

      const since = await sub.readSince(topic, all[1]!.id);
      expect(since.map((e) => e.id)).toEqual(all.slice(2).map((e) => e.id));
      expect(await sub.readSince(topic, all[4]!.id)).toEqual([]);
      expect((await sub.readSince(topic, undefined, 2)).map((e) => e.id)).toEqual(all.slice(0, 2).map((e) => e.id));
      expect((await pub.readSince(topic, all[0]!.id, 1)).map((e) => e.id)).toEqual([all[1]!.id]);
      expect(await sub.readSince(`${topic}-other`)).toEqual([]);
      await expect(sub.readSince(topic, 'not-an-id')).rejects.toThrow(/malformed/);
    });
  });
}

describe('RedisBus across nodes and outages', () => {
  it('fans out to every node of a fleet', async () => {
    const prefix = `t:${randomUUID()}:`;
    const nodes = await Promise.all(Array.from({ length: 5 }, () => redisBus(prefix)));
    const got = nodes.map((n) => collect(n, 'org:fleet'));
    await Promise.all(nodes.map((n) => n.ready()));
    await nodes[2]!.publish('org:fleet', 'session:created', { from: 2 });
    await waitFor(() => got.every((g) => g.events.length === 1));
    for (const g of got) expect(g.events[0]!.payload).toEqual({ from: 2 });
  });

  it('isolates fleets by prefix', async () => {
    const a = await redisBus(`t:${randomUUID()}:`);
    const b = await redisBus(`t:${randomUUID()}:`);
    const got = collect(b, 'org:x');
    const mine = collect(a, 'org:x');
    await b.ready();
    await a.publish('org:x', 'deploy:step', 1);
    await b.publish('org:x', 'deploy:step', 2);
    await waitFor(() => got.events.length === 1 && mine.events.length === 1);
    expect(got.events[0]!.payload).toBe(2);
    expect((await b.readSince('org:x')).map((e) => e.payload)).toEqual([2]);
  });

  it('survives a redis-server restart: local delivery continues, then re-subscribes', async () => {
    {
      const prefix = `t:${randomUUID()}:`;
      const errors: string[] = [];
      const changes: boolean[] = [];
      const a = await redisBus(prefix, { onError: (e, ctx) => errors.push(`${ctx}: ${e.message}`) });
      const b = await redisBus(prefix, { onConnectionChange: (up) => changes.push(up) });
      const local = collect(a, 'session:r');
      const remote = collect(b, 'session:r');
      await b.ready();
      await a.publish('session:r', 'output', 'before');
      await waitFor(() => remote.events.length === 1);

      await redis.stop();
      await waitFor(() => !a.isUp && !b.isUp);
      // Redis is away: publishing still resolves and still reaches this node's subscribers.
      await expect(a.publish('session:r', 'output', 'during')).resolves.toBeUndefined();
      await expect(a.publish('session:r', 'session:updated', 'during-replayable')).resolves.toBeUndefined();
      expect(local.events.map((e) => e.payload)).toEqual(['before', 'during', 'during-replayable']);
      expect(errors.some((e) => e.startsWith('bus:publish'))).toBe(true);
      await expect(a.readSince('session:r')).rejects.toThrow();

      await redis.restart();
      await waitFor(() => a.isUp && b.isUp, 30_000);
      expect(await b.ready()).toBe(true);
      await a.publish('session:r', 'session:updated', 'after');
      await waitFor(() => remote.events.some((e) => e.payload === 'after'));
      const after = remote.events.find((e) => e.payload === 'after')!;
      expect(after.id).toBeDefined();
      expect((await b.readSince('session:r')).map((e) => e.payload)).toEqual(['after']);
      expect(changes).toContain(false);
      expect(changes.at(-1)).toBe(true);
      // A subscription made after the restart works too.
      const late = collect(b, 'org:late');
      await b.ready();
      await a.publish('org:late', 'x', 'late');
      await waitFor(() => late.events.length === 1);
    }
    expect(unhandled.errors).toEqual([]);
  });

  it('subscribing while Redis is down takes effect once it is back', async () => {
    const prefix = `t:${randomUUID()}:`;
    const a = await redisBus(prefix);
    const b = await redisBus(prefix);
    await redis.stop();
    await waitFor(() => !b.isUp);
    const got = collect(b, 'org:down');
    await redis.restart();
    await waitFor(() => a.isUp && b.isUp, 30_000);
    expect(await b.ready()).toBe(true);
    await a.publish('org:down', 'x', 1);
    await waitFor(() => got.events.length === 1);
  });

  it('closes every connection it opened (close and destroy)', async () => {
    await waitFor(async () => (await serverClients(redis.url)) === 0, 10_000, 'earlier clients to leave');
    const before = tcpHandles();
    const client = await connectRedis(redis.url, quietLog);
    const a = new RedisBus(client!, { prefix: `t:${randomUUID()}:` });
    const b = new RedisBus(client!, { prefix: a.prefix });
    a.subscribe('org:h', () => {});
    expect(await a.ready()).toBe(true);
    expect(await b.ready()).toBe(true);
    await b.publish('org:h', 'deploy:step', 1);
    expect(await serverClients(redis.url)).toBe(5); // base + 2 per bus
    await a.close();
    b.destroy();
    b.destroy();
    await b.close();
    await client!.quit();
    await waitFor(async () => (await serverClients(redis.url)) === 0, 10_000, 'server to see every connection closed');
    await waitFor(() => tcpHandles() <= before, 10_000, 'local sockets to close');
  });
});
