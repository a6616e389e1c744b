/**
 * When a message that failed temporarily is tried again (API.md, Sending): after about 10 s, 30 s,
 * 2 min, 10 min and then every 30 min, each with jitter (so the messages an SMTP outage held back do
 * not all come back in the same second), for OUTBOX_RETRY_HOURS after the message was queued.
 */

/** The delays after the 1st, 2nd, ... failed attempt; the last one repeats. */
export const OUTBOX_RETRY_DELAYS_MS = [10_000, 30_000, 2 * 60_000, 10 * 60_000, 30 * 60_000] as const;

/** Each delay is drawn from ±JITTER of its nominal value. */
const JITTER = 0.1;

/**
 * After the `attempt`-th attempt (1 for the first) failed at `nowMs`: when to try next (ms since the
 * epoch), or null once that would fall after `queuedAtMs + retryHours`.
 */
export function nextSendAttempt(attempt: number, nowMs: number, queuedAtMs: number, retryHours: number, random: () => number = Math.random): number | null {
  const nominal = OUTBOX_RETRY_DELAYS_MS[Math.min(Math.max(attempt, 1), OUTBOX_RETRY_DELAYS_MS.length) - 1]!;
  const next = Math.round(nowMs + nominal * (1 - JITTER + 2 * JITTER * random()));
  return next > queuedAtMs + retryHours * 3_600_000 ? null : next;
}
