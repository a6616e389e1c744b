/**
 * When a failed webhook delivery is tried again (API.md, Webhooks): after about 5 s, 20 s, 1 min,
 * 5 min, 20 min, 1 h and then hourly, each with jitter (so that the deliveries a receiver's outage held
 * back do not all come back in the same second), for WEBHOOK_RETRY_HOURS after the first attempt. A
 * `Retry-After` longer than the schedule's next step is honoured (RFC 9110 §10.2.3); a shorter one is
 * not, so a receiver cannot make the gateway hammer it.
 */

/** The delays after the 1st, 2nd, ... failed attempt; the last one repeats. */
export const RETRY_DELAYS_MS = [5_000, 20_000, 60_000, 5 * 60_000, 20 * 60_000, 3_600_000] as const;

/** Each delay is drawn from ±JITTER of its nominal value. */
const JITTER = 0.2;

export interface RetryDecision {
  /** Try again at this time (ms since the epoch); null: give up, the event is failed. */
  nextAttemptAtMs: number | null;
}

/**
 * After the `attempt`-th attempt (1 for the first) failed at `nowMs`: when to try next, or null once
 * the schedule's next try would fall after `firstAttemptAtMs + retryHours`.
 */
export function nextAttempt(
  attempt: number,
  nowMs: number,
  firstAttemptAtMs: number,
  retryHours: number,
  retryAfterMs: number | null = null,
  random: () => number = Math.random,
): RetryDecision {
  const nominal = RETRY_DELAYS_MS[Math.min(Math.max(attempt, 1), RETRY_DELAYS_MS.length) - 1]!;
  const jittered = nowMs + nominal * (1 - JITTER + 2 * JITTER * random());
  const deadline = firstAttemptAtMs + retryHours * 3_600_000;
  if (jittered > deadline) return { nextAttemptAtMs: null };
  // A Retry-After reaching past the deadline gets one last attempt at the deadline: a receiver's
  // long pause never makes the gateway give up sooner than its own schedule would.
  const asked = retryAfterMs === null ? jittered : Math.max(jittered, nowMs + retryAfterMs);
  return { nextAttemptAtMs: Math.round(Math.min(asked, deadline)) };
}

/**
 * A `Retry-After` header as a delay in ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); null when
 * absent or unreadable. Capped at a day: a receiver cannot park a webhook for longer than that.
 */
export function retryAfterMs(header: string | undefined, nowMs: number): number | null {
  if (header === undefined) return null;
  const text = header.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return null;
    ms = at - nowMs;
  }
  return Math.min(Math.max(ms, 0), 24 * 3_600_000);
}
