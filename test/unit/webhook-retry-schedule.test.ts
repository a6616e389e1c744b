import { describe, expect, it } from 'vitest';
import { nextAttempt, retryAfterMs } from '../../src/webhooks/retry-schedule.js';

const start = Date.parse('2026-12-02T00:00:00Z');
const middle = () => 0.5;

describe('webhook retry schedule', () => {
  it('waits about 5 s, 20 s, 1 min, 5 min, 20 min, 1 h and then hourly', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 12].map((attempt) => nextAttempt(attempt, start, start, 24, null, middle).nextAttemptAtMs! - start);
    expect(delays).toEqual([5_000, 20_000, 60_000, 300_000, 1_200_000, 3_600_000, 3_600_000, 3_600_000]);
  });

  it('spreads each delay by up to a fifth either way', () => {
    expect(nextAttempt(1, start, start, 24, null, () => 0).nextAttemptAtMs! - start).toBe(4_000);
    expect(nextAttempt(1, start, start, 24, null, () => 0.999999).nextAttemptAtMs! - start).toBe(6_000);
    const seen = new Set(Array.from({ length: 50 }, () => nextAttempt(2, start, start, 24).nextAttemptAtMs));
    expect(seen.size).toBeGreaterThan(1);
  });

  it('gives up once the next try would come after WEBHOOK_RETRY_HOURS', () => {
    const late = start + 23.5 * 3_600_000;
    expect(nextAttempt(30, late, start, 24, null, middle).nextAttemptAtMs).toBeNull();
    expect(nextAttempt(30, start + 22 * 3_600_000, start, 24, null, middle).nextAttemptAtMs).toBe(start + 23 * 3_600_000);
    expect(nextAttempt(1, start, start, 0, null, middle).nextAttemptAtMs).toBeNull();
  });

  it('honours a Retry-After longer than the next step, never a shorter one', () => {
    expect(nextAttempt(1, start, start, 24, 120_000, middle).nextAttemptAtMs! - start).toBe(120_000);
    expect(nextAttempt(3, start, start, 24, 1_000, middle).nextAttemptAtMs! - start).toBe(60_000);
  });

  it('makes a last attempt at the deadline when a Retry-After reaches past it, rather than giving up at once', () => {
    const deadline = start + 24 * 3_600_000;
    const late = start + 23 * 3_600_000;
    expect(nextAttempt(2, late, start, 24, 24 * 3_600_000, middle).nextAttemptAtMs).toBe(deadline);
    // Past what the schedule itself would allow, a Retry-After changes nothing: given up.
    expect(nextAttempt(30, start + 23.5 * 3_600_000, start, 24, 60_000, middle).nextAttemptAtMs).toBeNull();
  });

  it('reads Retry-After as seconds or as an HTTP date, capped at a day', () => {
    expect(retryAfterMs('120', start)).toBe(120_000);
    expect(retryAfterMs(new Date(start + 30_000).toUTCString(), start)).toBe(30_000);
    expect(retryAfterMs(new Date(start - 30_000).toUTCString(), start)).toBe(0);
    expect(retryAfterMs('9999999', start)).toBe(24 * 3_600_000);
    expect(retryAfterMs('soon', start)).toBeNull();
    expect(retryAfterMs(undefined, start)).toBeNull();
  });
});
