/** First allocation of a ring; it doubles as output arrives, up to its capacity. */
const INITIAL_RING_BYTES = 16 * 1024;

/**
 * Bounded replay ring over a session's output, addressed by absolute byte offset.
 * Holds the last `capacity` bytes: [start, end). Memory grows with the output (a quiet
 * session does not hold a full REPLAY_BYTES buffer). Copy-in on push, copy-out on read.
 */
export class ReplayRing {
  private buf: Buffer;
  /** Index in `buf` of the byte at offset `start`. */
  private head = 0;
  private size = 0;
  /** Absolute offset of the byte after the last one pushed. */
  end: number;

  constructor(readonly capacity: number, baseOffset = 0, initial?: Uint8Array) {
    this.buf = Buffer.allocUnsafe(Math.min(capacity, INITIAL_RING_BYTES));
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
      this.size = 0;
      this.head = 0;
      src = src.subarray(src.length - cap);
    }
    const need = this.size + src.length;
    if (need > this.buf.length && this.buf.length < cap) this.grow(Math.min(cap, Math.max(need, this.buf.length * 2)));
    const L = this.buf.length;
    // Drop the oldest bytes that no longer fit.
    const overflow = Math.max(0, this.size + src.length - L);
    if (overflow > 0) {
      this.head = (this.head + overflow) % L;
      this.size -= overflow;
    }
    const pos = (this.head + this.size) % L;
    const first = Math.min(src.length, L - pos);
    copyInto(this.buf, pos, src, 0, first);
    if (first < src.length) copyInto(this.buf, 0, src, first, src.length);
    this.size += src.length;
    this.end += src.length;
  }

  private grow(to: number): void {
    const next = Buffer.allocUnsafe(to);
    this.copyOut(next, 0, this.head, this.size);
    this.buf = next;
    this.head = 0;
  }

  private copyOut(target: Buffer, at: number, from: number, len: number): void {
    const L = this.buf.length;
    const first = Math.min(len, L - from);
    this.buf.copy(target, at, from, from + first);
    if (first < len) this.buf.copy(target, at + first, 0, len - first);
  }

  /** Copy of the bytes in [from, end); `from` must be within [start, end]. */
  slice(from: number): Buffer {
    const len = this.end - from;
    const out = Buffer.allocUnsafe(len);
    if (len === 0) return out;
    this.copyOut(out, 0, (this.head + (from - this.start)) % this.buf.length, len);
    return out;
  }
}

/** Below this many bytes a loop beats making a view for `set` (an echo is a few bytes). */
const SMALL_COPY_BYTES = 64;

function copyInto(target: Uint8Array, at: number, src: Uint8Array, from: number, to: number): void {
  if (to - from <= SMALL_COPY_BYTES) {
    for (let i = from; i < to; i++) target[at++] = src[i]!;
  } else target.set(from === 0 && to === src.length ? src : src.subarray(from, to), at);
}

/** Move an offset forward past UTF-8 continuation bytes so a replay never starts mid-character. */
export function alignToCharStart(bytes: Uint8Array, skipMax = 3): number {
  let i = 0;
  while (i < bytes.length && i < skipMax && (bytes[i]! & 0xc0) === 0x80) i++;
  return i;
}
