import { expect, it } from 'vitest';
import { AdmissionQueue } from '../../src/supervisor/admission-queue.js';
import type { SessionRecord } from '../../src/supervisor/session.js';

const rec = (id: string, priority: number, createdAt: string) => ({ id, priority, createdAt }) as SessionRecord;

it('orders by priority, then age, then arrival; reports 1-based positions', () => {
  const q = new AdmissionQueue();
  q.push(rec('a', 0, '2026-01-01T00:00:01Z'));
  q.push(rec('b', 5, '2026-01-01T00:00:02Z'));
  q.push(rec('c', 0, '2026-01-01T00:00:00Z'));
  q.push(rec('d', 5, '2026-01-01T00:00:02Z'));
  q.push(rec('e', -1, '2026-01-01T00:00:00Z'));
  expect(['a', 'b', 'c', 'd', 'e'].map((id) => q.position(id))).toEqual([4, 1, 3, 2, 5]);
  expect(q.remove('c')).toBe(true);
  expect(q.position('a')).toBe(3);
  expect(q.shift()?.id).toBe('b');
  expect(q.drain().map((r) => r.id)).toEqual(['d', 'a', 'e']);
  expect(q.size).toBe(0);
});
