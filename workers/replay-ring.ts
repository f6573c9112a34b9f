/**
 * Bounded replay ring over a session's output, addressed by absolute byte offset.
 * Holds the last `capacity` bytes: [start, end). Copy-in on push, copy-out on read.
 */
export class ReplayRing {
  private readonly buf: Buffer;
  /** Absolute offset of the byte after the last one pushed. */
  end: number;
  private size = 0;

  constructor(readonly capacity: number, baseOffset = 0, initial?: Uint8Array) {
    this.buf = Buffer.allocUnsafe(capacity);
    this.end = baseOffset;
    if (initial && initial.length > 0) {
      // `initial` ends at baseOffset: it is the tail of a previous run's output.
      const tail = initial.length > capacity ? initial.subarray(initial.length - capacity) : initial;
      this.end = baseOffset - tail.length;
      this.push(tail);
    }
  }

  get start(): number {
    return this.end - this.size;
  }

  push(bytes: Uint8Array): void {
    const cap = this.capacity;
    let src = bytes;
    if (src.length > cap) {
      // Only the last `capacity` bytes can be kept; skip the rest.
      this.end += src.length - cap;
      src = src.subarray(src.length - cap);
    }
    const pos = this.end % cap;
    const first = Math.min(src.length, cap - pos);
    this.buf.set(src.subarray(0, first), pos);
    if (first < src.length) this.buf.set(src.subarray(first), 0);
    this.end += src.length;
    this.size = Math.min(cap, this.size + src.length);
  }

  /** Copy of the bytes in [from, end); `from` must be within [start, end]. */
  slice(from: number): Buffer {
    const len = this.end - from;
    const out = Buffer.allocUnsafe(len);
    if (len === 0) return out;
    const cap = this.capacity;
    const pos = from % cap;
    const first = Math.min(len, cap - pos);
    this.buf.copy(out, 0, pos, pos + first);
    if (first < len) this.buf.copy(out, first, 0, len - first);
    return out;
  }
}

/** Move an offset forward past UTF-8 continuation bytes so a replay never starts mid-character. */
export function alignToCharStart(bytes: Uint8Array, skipMax = 3): number {
  let i = 0;
  while (i < bytes.length && i < skipMax && (bytes[i]! & 0xc0) === 0x80) i++;
  return i;
}
