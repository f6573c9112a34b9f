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

/** Hand each record of a batch to `each`, in order. */
export function decodeOutputs(s: string, each: (key: number, m: Extract<FromActor, { t: 'out' }>) => void): void {
  let pos = 0;
  /** The decimal integer at `pos`, ended by the character `end` (which it steps over). */
  const int = (end: number): number => {
    let v = 0;
    for (; pos < s.length; pos++) {
      const c = s.charCodeAt(pos);
      if (c === end) {
        pos++;
        return v;
      }
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
    }
    throw new Error('malformed output batch');
  };
  while (pos < s.length) {
    const key = int(44);
    const offset = int(44);
    const length = int(44);
    const ascii = int(44) === 1;
    const stop = int(58) + pos;
    if (stop > s.length) throw new Error('malformed output batch');
    const text = s.slice(pos, stop);
    pos = stop;
    each(key, { t: 'out', offset, length, frame: Buffer.from(text, ascii ? 'latin1' : 'utf8') });
  }
}
