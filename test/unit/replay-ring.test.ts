import { describe, expect, it } from 'vitest';
import { ReplayRing, alignToCharStart } from '../../workers/replay-ring.js';

describe('ReplayRing', () => {
  it('keeps the last `capacity` bytes addressed by absolute offset, across wraps', () => {
    const ring = new ReplayRing(10);
    const all: number[] = [];
    let n = 0;
    for (const len of [3, 4, 5, 1, 9, 2, 25, 7]) {
      const chunk = Buffer.from(Array.from({ length: len }, () => n++ % 251));
      all.push(...chunk);
      ring.push(chunk);
      expect(ring.end).toBe(all.length);
      expect(ring.start).toBe(Math.max(0, all.length - 10));
      for (let from = ring.start; from <= ring.end; from++) {
        expect([...ring.slice(from)]).toEqual(all.slice(from));
      }
    }
  });

  it('continues a previous run: base offset and initial tail', () => {
    const ring = new ReplayRing(8, 100, Buffer.from('abcdefghij'));
    expect(ring.end).toBe(100);
    expect(ring.start).toBe(92);
    expect(ring.slice(92).toString()).toBe('cdefghij');
    ring.push(Buffer.from('XY'));
    expect(ring.slice(ring.start).toString()).toBe('efghijXY');
  });

  it('aligns a start that falls inside a multi-byte character', () => {
    const b = Buffer.from('é✓x');
    expect(alignToCharStart(b.subarray(1))).toBe(1);
    expect(alignToCharStart(b.subarray(3))).toBe(2);
    expect(alignToCharStart(b)).toBe(0);
  });
});

describe('ReplayRing growth', () => {
  it('grows from a small buffer to its capacity and stays exact across wraps', () => {
    const ring = new ReplayRing(100_000);
    const all: number[] = [];
    let n = 0;
    for (const len of [10, 5000, 20_000, 1, 70_000, 33, 50_000, 99_999, 7]) {
      const chunk = Buffer.from(Array.from({ length: len }, () => n++ % 253));
      for (const b of chunk) all.push(b);
      ring.push(chunk);
      expect(ring.end).toBe(all.length);
      expect(ring.start).toBe(Math.max(0, all.length - 100_000));
      for (const from of [ring.start, ring.start + 1, Math.floor((ring.start + ring.end) / 2), ring.end - 1, ring.end]) {
        if (from < ring.start || from > ring.end) continue;
        expect(ring.slice(from).equals(Buffer.from(all.slice(from)))).toBe(true);
      }
    }
  });
});
