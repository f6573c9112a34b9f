/**
 * One behaviour suite for every Store: FsStore on a temp dir and RedisStore on a private
 * redis-server started here (unique key prefix per test). Then what only Redis offers
 * (TTLs, bounded logs, several nodes on one store) and the boot-time connection helper.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { Store } from '../../src/store/store.js';
import { FsStore } from '../../src/store/fs-store.js';
import { RedisStore, type RedisStoreOptions } from '../../src/store/redis-store.js';
import { connectRedis, redisClientOptions, redactRedisUrl } from '../../src/store/redis-connect.js';
import { freePort, startRedis, type TestRedis } from '../helpers/redis.js';
import { logged, quietLog, serverClients, tcpHandles, waitFor, watchUnhandled } from './wait.js';

let redis: TestRedis;
const cleanups: Array<() => Promise<void> | void> = [];
const unhandled = watchUnhandled();

beforeAll(async () => {
  redis = await startRedis();
});

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

afterAll(async () => {
  await redis?.stop();
  unhandled.stop();
  expect(unhandled.errors).toEqual([]);
});

async function redisStore(opts: RedisStoreOptions = {}): Promise<RedisStore> {
  const client = await connectRedis(redis.url, quietLog);
  if (!client) throw new Error('test redis unreachable');
  const store = new RedisStore(client, { prefix: `t:${randomUUID()}:`, ...opts });
  cleanups.push(() => store.close());
  return store;
}

interface Backend {
  name: string;
  make(): Promise<Store>;
}

const backends: Backend[] = [
  {
    name: 'FsStore',
    async make() {
      const dir = mkdtempSync(path.join(tmpdir(), 'sm-store-'));
      const store = new FsStore(dir);
      await store.init();
      cleanups.push(async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      });
      return store;
    },
  },
  { name: 'RedisStore', make: () => redisStore() },
];

const sortById = <T extends { id: string }>(xs: T[]) => [...xs].sort((a, b) => a.id.localeCompare(b.id));

for (const backend of backends) {
  describe(`Store contract: ${backend.name}`, () => {
    it('answers undefined for a missing document and [] for a missing collection or log', async () => {
      const s = await backend.make();
      expect(await s.get('things', 'nope')).toBeUndefined();
      expect(await s.list('things')).toEqual([]);
      expect(await s.readLog('nolog')).toEqual([]);
      expect(await s.readLog('nolog', { newestFirst: true, limit: 5 })).toEqual([]);
    });

    it('round-trips JSON documents exactly', async () => {
      const s = await backend.make();
      const doc = { id: 'a1', n: 1.5, neg: -3, big: 2 ** 52, t: true, nul: null, arr: [1, 'two', { three: 3 }], s: 'é漢字🙂"\\\n\u0000', nested: { deep: { x: [] } } };
      await s.put('things', 'a1', doc);
      expect(await s.get('things', 'a1')).toEqual(doc);
      await s.put('scalars', 'str', 'just a string');
      await s.put('scalars', 'num', 42);
      expect(await s.get('scalars', 'str')).toBe('just a string');
      expect(await s.get('scalars', 'num')).toBe(42);
    });

    it('replaces, never merges, on put; readers get copies', async () => {
      const s = await backend.make();
      await s.put('things', 'x', { id: 'x', a: 1, b: 2 });
      await s.put('things', 'x', { id: 'x', c: 3 });
      const got = await s.get<Record<string, unknown>>('things', 'x');
      expect(got).toEqual({ id: 'x', c: 3 });
      got!.c = 99;
      expect(await s.get('things', 'x')).toEqual({ id: 'x', c: 3 });
      const mine = { id: 'y', v: 1 };
      await s.put('things', 'y', mine);
      mine.v = 2;
      expect(await s.get('things', 'y')).toEqual({ id: 'y', v: 1 });
    });

    it('lists every document of a collection and only that collection', async () => {
      const s = await backend.make();
      const docs = Array.from({ length: 120 }, (_, i) => ({ id: `d${String(i).padStart(3, '0')}`, i }));
      await Promise.all(docs.map((d) => s.put('things', d.id, d)));
      await s.put('thing', 'other', { id: 'other' });
      await s.put('things2', 'other2', { id: 'other2' });
      await s.put('things/sub', 'nested', { id: 'nested' });
      expect(sortById(await s.list<{ id: string; i: number }>('things'))).toEqual(docs);
      expect(await s.list('thing')).toEqual([{ id: 'other' }]);
      expect(await s.list('things/sub')).toEqual([{ id: 'nested' }]);
    });

    it('scans every document of a collection a batch at a time', async () => {
      const s = await backend.make();
      const docs = Array.from({ length: 1300 }, (_, i) => ({ id: `d${String(i).padStart(4, '0')}`, i }));
      for (let i = 0; i < docs.length; i += 100) await Promise.all(docs.slice(i, i + 100).map((d) => s.put('many', d.id, d)));
      await s.put('many2', 'other', { id: 'other' });
      const seen = new Map<string, { id: string; i: number }>();
      let visits = 0;
      await s.scan<{ id: string; i: number }>('many', (d) => {
        visits++;
        seen.set(d.id, d);
      });
      expect(sortById([...seen.values()])).toEqual(docs);
      expect(visits).toBeGreaterThanOrEqual(docs.length);
      let none = 0;
      await s.scan('nothing-here', () => none++);
      expect(none).toBe(0);
    });

    it('keeps session records (the collection with its own layout) like any other', async () => {
      const s = await backend.make();
      const id = randomUUID();
      const rec = { id, status: 'running', orgId: 'acme', outputOffset: 0 };
      await s.put('sessions', id, rec);
      await s.put('sessions', id, { ...rec, status: 'exited', exitCode: 0 });
      expect(await s.get('sessions', id)).toEqual({ ...rec, status: 'exited', exitCode: 0 });
      expect(await s.list('sessions')).toEqual([{ ...rec, status: 'exited', exitCode: 0 }]);
      expect(await s.delete('sessions', id)).toBe(true);
      expect(await s.list('sessions')).toEqual([]);
    });

    it('deletes a document once, with the log stored under it', async () => {
      const s = await backend.make();
      await s.put('deploys', 'j1', { id: 'j1' });
      await s.append('deploys/j1', { step: 'prepare' });
      await s.append('deploys/j2', { step: 'other job' });
      expect(await s.delete('deploys', 'j1')).toBe(true);
      expect(await s.delete('deploys', 'j1')).toBe(false);
      expect(await s.delete('deploys', 'never')).toBe(false);
      expect(await s.get('deploys', 'j1')).toBeUndefined();
      expect(await s.list('deploys')).toEqual([]);
      expect(await s.readLog('deploys/j1')).toEqual([]);
      expect(await s.readLog('deploys/j2')).toEqual([{ step: 'other job' }]);
    });

    it('never tears a document under concurrent puts', async () => {
      const s = await backend.make();
      const big = (n: number) => ({ id: 'c', n, fill: String(n).repeat(50_000) });
      await Promise.all(Array.from({ length: 20 }, (_, n) => s.put('things', 'c', big(n))));
      const got = await s.get<{ n: number; fill: string }>('things', 'c');
      expect(got).toEqual(big(got!.n));
      // Sequential writes: the last one wins.
      for (let n = 0; n < 5; n++) await s.put('things', 'c', big(n));
      expect((await s.get<{ n: number }>('things', 'c'))!.n).toBe(4);
    });

    it('round-trips a large document', async () => {
      const s = await backend.make();
      const doc = { id: 'big', data: 'z'.repeat(2 * 1024 * 1024), list: Array.from({ length: 5000 }, (_, i) => i) };
      await s.put('things', 'big', doc);
      expect(await s.get('things', 'big')).toEqual(doc);
    });

    it('appends to logs in call order and reads them oldest or newest first, bounded by limit', async () => {
      const s = await backend.make();
      // Not awaited one by one: order must still be the call order.
      await Promise.all(Array.from({ length: 300 }, (_, i) => s.append('jobs', { i, at: `t${i}` })));
      const all = await s.readLog<{ i: number }>('jobs');
      expect(all.map((e) => e.i)).toEqual([...Array(300).keys()]);
      expect((await s.readLog<{ i: number }>('jobs', { newestFirst: true })).map((e) => e.i)).toEqual([...Array(300).keys()].reverse());
      expect((await s.readLog<{ i: number }>('jobs', { limit: 3 })).map((e) => e.i)).toEqual([0, 1, 2]);
      expect((await s.readLog<{ i: number }>('jobs', { limit: 3, newestFirst: true })).map((e) => e.i)).toEqual([299, 298, 297]);
      expect((await s.readLog<{ i: number }>('jobs', { limit: 1000 })).length).toBe(300);
      expect(await s.readLog('jobs', { limit: 0 })).toEqual([]);
    });

    it('reads its own appends, settled or not', async () => {
      const s = await backend.make();
      const pending = [s.append('jobs', { i: 1 }), s.append('jobs', { i: 2 })];
      expect(await s.readLog('jobs')).toEqual([{ i: 1 }, { i: 2 }]);
      await Promise.all(pending);
    });

    it('keeps logs apart, including nested log names', async () => {
      const s = await backend.make();
      await s.append('a', 1);
      await s.append('a/b', 2);
      await s.append('ab', 3);
      await s.append('conversations/acme/p1', { role: 'user', content: 'hé' });
      expect(await s.readLog('a')).toEqual([1]);
      expect(await s.readLog('a/b')).toEqual([2]);
      expect(await s.readLog('ab')).toEqual([3]);
      expect(await s.readLog('conversations/acme/p1')).toEqual([{ role: 'user', content: 'hé' }]);
    });

    it('refuses unsafe collection, id and log names', async () => {
      const s = await backend.make();
      for (const bad of ['..', '.', '', 'a/../b', '.hidden', 'a//b', '/abs', 'sp ace', 'a:b', 'a{b}']) {
        await expect(async () => s.put(bad, 'id', {})).rejects.toThrow(/unsafe/);
        await expect(async () => s.get(bad, 'id')).rejects.toThrow(/unsafe/);
        await expect(async () => s.list(bad)).rejects.toThrow(/unsafe/);
        await expect(async () => s.append(bad, {})).rejects.toThrow(/unsafe/);
        await expect(async () => s.readLog(bad)).rejects.toThrow(/unsafe/);
      }
      for (const bad of ['..', '.', '', '../x', '.x']) {
        await expect(async () => s.put('things', bad, {})).rejects.toThrow(/unsafe/);
        await expect(async () => s.delete('things', bad)).rejects.toThrow(/unsafe/);
      }
    });

    it('rejects writes after close; close twice is safe', async () => {
      const s = await backend.make();
      await s.put('things', 'k', { id: 'k' });
      await s.append('jobs', { id: 1 });
      await s.close();
      await s.close();
      await expect(async () => s.put('things', 'k2', {})).rejects.toThrow(/closed/);
      await expect(async () => s.append('jobs', {})).rejects.toThrow(/closed/);
      await expect(async () => s.delete('things', 'k')).rejects.toThrow(/closed/);
    });

    it('lets pending appends finish on close', async () => {
      const s = await backend.make();
      const writes = Array.from({ length: 50 }, (_, i) => s.append('jobs', { i }));
      await s.close();
      await Promise.all(writes);
      const again = await (backend.name === 'FsStore' ? reopenFs(s as FsStore) : reopenRedis(s as RedisStore));
      expect((await again.readLog<{ i: number }>('jobs')).map((e) => e.i)).toEqual([...Array(50).keys()]);
    });
  });
}

async function reopenFs(s: FsStore): Promise<Store> {
  const again = new FsStore(s.root);
  await again.init();
  return again;
}

async function reopenRedis(s: RedisStore): Promise<Store> {
  return redisStore({ prefix: s.prefix });
}

describe('FsStore beyond the contract', () => {
  it('lists a collection of more documents than a process may hold descriptors, skipping strays', async () => {
    const s = await (backends[0]!.make() as Promise<FsStore>);
    // Written directly (21,000 durable puts would take a minute): the layout of DESIGN §2.
    const n = 21_000;
    for (let i = 0; i < n; i++) {
      const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      mkdirSync(path.join(s.root, 'sessions', id), { recursive: true });
      writeFileSync(path.join(s.root, 'sessions', id, 'metadata.json'), JSON.stringify({ id, i }));
    }
    writeFileSync(path.join(s.root, 'sessions', 'stray-file'), 'not a session');
    mkdirSync(path.join(s.root, 'sessions', 'torn'));
    writeFileSync(path.join(s.root, 'sessions', 'torn', 'metadata.json'), '{"id":"torn"');
    const all = await s.list<{ id: string; i: number }>('sessions');
    expect(all.length).toBe(n);
    expect(new Set(all.map((d) => d.i)).size).toBe(n);
  });

  it('fails every append of a write that fails, and the appends after it still land in order', async () => {
    const s = await (backends[0]!.make() as Promise<FsStore>);
    // A file where the log's folder belongs: the write cannot happen.
    writeFileSync(path.join(s.root, 'deploys'), 'not a folder');
    const failed = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => s.append('deploys/j1', { i })));
    expect(failed.map((r) => r.status)).toEqual(Array(20).fill('rejected'));
    for (const r of failed) expect(String((r as PromiseRejectedResult).reason)).toMatch(/EEXIST|ENOTDIR/);
    rmSync(path.join(s.root, 'deploys'));
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.append('deploys/j1', { i })));
    expect((await s.readLog<{ i: number }>('deploys/j1')).map((e) => e.i)).toEqual([...Array(20).keys()]);
  });
});

describe('RedisStore beyond the contract', () => {
  it('expires documents put with ttlMs, and a later put without ttl keeps them', async () => {
    const s = await redisStore();
    await s.put('cohost', 'tok1', { token: 'tok1' }, { ttlMs: 150 });
    await s.put('cohost', 'tok2', { token: 'tok2' }, { ttlMs: 150 });
    await s.put('cohost', 'keep', { token: 'keep' }, { ttlMs: 60_000 });
    await s.put('cohost', 'forever', { token: 'forever' });
    expect(await s.get('cohost', 'tok1')).toEqual({ token: 'tok1' });
    await s.put('cohost', 'tok2', { token: 'tok2', renewed: true }); // ttl dropped
    await waitFor(async () => (await s.get('cohost', 'tok1')) === undefined, 10_000, 'tok1 to expire');
    expect((await s.list<{ token: string }>('cohost')).map((d) => d.token).sort()).toEqual(['forever', 'keep', 'tok2']);
    expect(await s.get('cohost', 'tok2')).toEqual({ token: 'tok2', renewed: true });
    // Expired entries are really gone from Redis after a list (no memory leak).
    const raw = new Redis(redis.url, redisClientOptions());
    raw.on('error', () => {});
    cleanups.push(() => void raw.disconnect());
    expect(await raw.hexists(`${s.prefix}doc:{cohost}`, 'tok1')).toBe(0);
    expect(await raw.zcard(`${s.prefix}exp:{cohost}`)).toBe(1);
    await expect(s.put('cohost', 'bad', {}, { ttlMs: 0 })).rejects.toThrow(RangeError);
    await expect(s.put('cohost', 'bad', {}, { ttlMs: Number.NaN })).rejects.toThrow(RangeError);
  });

  it('bounds logs to the configured length, keeping the newest entries', async () => {
    const s = await redisStore({ logMaxLength: (log) => (log === 'jobs' ? 10 : undefined) });
    for (let i = 0; i < 25; i++) await s.append('jobs', { i });
    for (let i = 0; i < 25; i++) await s.append('other', { i });
    expect((await s.readLog<{ i: number }>('jobs')).map((e) => e.i)).toEqual([...Array(10).keys()].map((i) => i + 15));
    expect((await s.readLog('other')).length).toBe(25);
  });

  it('is one store for several nodes', async () => {
    const a = await redisStore();
    const b = await redisStore({ prefix: a.prefix });
    await a.put('sessions', 's1', { id: 's1', node: 'a' });
    await b.append('jobs', { from: 'b' });
    expect(await b.get('sessions', 's1')).toEqual({ id: 's1', node: 'a' });
    expect(await a.readLog('jobs')).toEqual([{ from: 'b' }]);
    expect(await b.delete('sessions', 's1')).toBe(true);
    expect(await a.list('sessions')).toEqual([]);
  });

  it('reports a ping round trip and keeps working across a redis-server restart', async () => {
    const errors: string[] = [];
    const s = await redisStore({ onError: (e, ctx) => errors.push(`${ctx}: ${e.message}`) });
    expect(await s.ping()).toBeGreaterThanOrEqual(0);
    await redis.restart();
    await waitFor(async () => s.ping().then(() => true, () => false), 30_000, 'store to reconnect');
    await s.put('things', 'after', { ok: true });
    expect(await s.get('things', 'after')).toEqual({ ok: true });
  });

  it('fails writes while Redis is away instead of hanging, and recovers', async () => {
    const s = await redisStore();
    await redis.stop();
    await expect(s.put('things', 'down', { ok: false })).rejects.toThrow();
    await redis.restart();
    await waitFor(async () => s.ping().then(() => true, () => false), 30_000, 'store to reconnect');
    await s.put('things', 'up', { ok: true });
    expect(await s.list('things')).toEqual([{ ok: true }]);
  });

  it('closes its connection on close(), or at once on destroy()', async () => {
    await waitFor(async () => (await serverClients(redis.url)) === 0, 10_000, 'earlier clients to leave');
    const before = tcpHandles();
    const a = new RedisStore((await connectRedis(redis.url, quietLog))!, { prefix: `t:${randomUUID()}:` });
    const b = new RedisStore((await connectRedis(redis.url, quietLog))!, { prefix: a.prefix });
    await a.put('x', 'y', {});
    expect(await serverClients(redis.url)).toBe(2);
    await a.close();
    b.destroy();
    b.destroy();
    await b.close();
    await expect(async () => b.put('x', 'z', {})).rejects.toThrow(/closed/);
    await waitFor(async () => (await serverClients(redis.url)) === 0, 10_000, 'server to see every connection closed');
    await waitFor(() => tcpHandles() <= before, 10_000, 'local sockets to close');
  });
});

describe('connectRedis', () => {
  it('returns a ready client when Redis answers', async () => {
    const client = await connectRedis(redis.url, quietLog);
    expect(client).toBeDefined();
    cleanups.push(() => void client!.quit());
    expect(await client!.ping()).toBe('PONG');
  });

  it('returns undefined and logs one warning when nothing listens, without retrying forever', async () => {
    const port = await freePort();
    const before = logged.length;
    const client = await connectRedis(`redis://:hunter2@127.0.0.1:${port}`, quietLog, { timeoutMs: 1500 });
    expect(client).toBeUndefined();
    const lines = logged.slice(before);
    expect(lines.some((l) => l.level === 'warn' && /falling back/.test(l.msg))).toBe(true);
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it('returns undefined within the timeout when the host does not answer', async () => {
    // A listening socket that never speaks RESP: connect succeeds, READY never comes.
    const net = await import('node:net');
    const sockets = new Set<import('node:net').Socket>();
    const silent = net.createServer((sock) => {
      sockets.add(sock);
      sock.on('data', () => {}); // read and ignore, so the client's FIN is seen
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      for (const sock of sockets) sock.destroy();
      return new Promise<void>((r) => silent.close(() => r()));
    });
    const port = (silent.address() as { port: number }).port;
    const t0 = Date.now();
    expect(await connectRedis(`redis://127.0.0.1:${port}`, quietLog, { timeoutMs: 500 })).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(30_000); // bounded, not a timing assertion
  });

  it('redacts credentials from URLs it logs', () => {
    expect(redactRedisUrl('redis://user:secret@h:6380/2')).toBe('redis://h:6380/2');
  });
});
