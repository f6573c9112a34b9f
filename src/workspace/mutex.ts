/**
 * A mutex per key (a project, a conversation, a repository): work under one key runs one
 * at a time in arrival order; different keys run in parallel. The chain entry for a key is
 * dropped once its last holder finishes, so idle keys cost nothing.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const result = prev.then(fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running (for tests and metrics). */
  get busy(): number {
    return this.tails.size;
  }
}
