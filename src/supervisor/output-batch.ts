/**
 * Output frames between an actor's thread and the supervisor, as one string per loop turn
 * (workers/outbox.ts says why). Each record is
 *
 *   <key>,<offset>,<length>,<ascii 0|1>,<frame chars>:<frame>
 *
 * where `frame` is the ready-to-send JSON text of an `output` frame, `length` the output
 * bytes it carries and `frame chars` its length in UTF-16 units. The supervisor turns each
 * frame back into bytes once (latin1 when ASCII: one byte per character, no encoding work).
 */
import type { FromActor } from './mailbox.js';

export function encodeOutput(key: number, offset: number, length: number, frame: string, ascii: boolean): string {
  return `${key},${offset},${length},${ascii ? 1 : 0},${frame.length}:${frame}`;
}

/** Where the last readInt stopped (one past its terminator). */
let pos = 0;

/** A decimal integer at `at`, ended by the character `end`. */
function readInt(s: string, at: number, end: number): number {
  let v = 0;
  for (let i = at; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === end) {
      pos = i + 1;
      return v;
    }
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  throw new Error('malformed output batch');
}

/** Hand each record of a batch to `each`, in order. */
export function decodeOutputs(s: string, each: (key: number, m: Extract<FromActor, { t: 'out' }>) => void): void {
  pos = 0;
  while (pos < s.length) {
    const key = readInt(s, pos, 44);
    const offset = readInt(s, pos, 44);
    const length = readInt(s, pos, 44);
    const ascii = readInt(s, pos, 44) === 1;
    const chars = readInt(s, pos, 58);
    const start = pos;
    const stop = start + chars;
    if (stop > s.length) throw new Error('malformed output batch');
    pos = stop;
    const text = s.slice(start, stop);
    each(key, { t: 'out', offset, length, frame: Buffer.from(text, ascii ? 'latin1' : 'utf8') });
  }
}
