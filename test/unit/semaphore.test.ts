import { describe, expect, it } from 'vitest';
import { Semaphore } from '../../src/util/semaphore.js';

describe('Semaphore', () => {
  it('lets at most its permits through at once, the others in arrival order', async () => {
    const gate = new Semaphore(2);
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, n) => {
        const release = await gate.acquire();
        order.push(n);
        inside += 1;
        most = Math.max(most, inside);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inside -= 1;
        release();
        release(); // a second call gives nothing back twice
      }),
    );
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // All permits are back: two more pass at once.
    const [a, b] = await Promise.all([gate.acquire(), gate.acquire()]);
    expect(gate.queued).toBe(0);
    a();
    b();
  });

  it('drops a waiter whose signal aborts, without losing a permit', async () => {
    const gate = new Semaphore(1);
    const held = await gate.acquire();
    const stop = new AbortController();
    const waiting = gate.acquire(stop.signal);
    expect(gate.queued).toBe(1);
    stop.abort(new Error('stopped'));
    await expect(waiting).rejects.toThrow('stopped');
    expect(gate.queued).toBe(0);
    held();
    const next = await gate.acquire();
    next();
    await expect(gate.acquire(stop.signal)).rejects.toThrow('stopped');
  });
});
