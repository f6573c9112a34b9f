import { expect, it } from 'vitest';
import { incompleteUtf8Tail } from '../../workers/session-actor.js';

it('finds an incomplete UTF-8 character at the end of a chunk, and only that', () => {
  const s = Buffer.from('aé✓😀');
  expect(incompleteUtf8Tail(s)).toBe(0);
  expect(incompleteUtf8Tail(s.subarray(0, s.length - 1))).toBe(3); // 😀 missing its last byte
  expect(incompleteUtf8Tail(s.subarray(0, s.length - 3))).toBe(1); // only 😀's lead byte
  expect(incompleteUtf8Tail(s.subarray(0, 2))).toBe(1); // é cut after its lead byte
  expect(incompleteUtf8Tail(s.subarray(0, 5))).toBe(2); // ✓ cut after two of three bytes
  expect(incompleteUtf8Tail(Buffer.from([0x61, 0x80, 0x80, 0x80, 0x80]))).toBe(0); // junk is not held back
  expect(incompleteUtf8Tail(Buffer.alloc(0))).toBe(0);
});
