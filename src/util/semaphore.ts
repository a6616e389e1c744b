/**
 * At most `permits` holders at a time; the others wait in arrival order. A waiter whose signal aborts
 * leaves the line (its acquire rejects with the signal's reason) without taking a permit.
 */
export class Semaphore {
  private free: number;
  private readonly waiting: Array<{ grant: (release: () => void) => void }> = [];

  constructor(permits: number) {
    if (!Number.isInteger(permits) || permits < 1) throw new Error('a semaphore needs at least one permit');
    this.free = permits;
  }

  /** Resolves with the function that gives the permit back (idempotent). */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const entry = {
        grant: (release: () => void) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const onAbort = (): void => {
        const index = this.waiting.indexOf(entry);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  /** Holders now waiting for a permit (metrics, tests). */
  get queued(): number {
    return this.waiting.length;
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next.grant(this.releaser());
      else this.free += 1;
    };
  }
}
