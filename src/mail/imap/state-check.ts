/**
 * Shared state checks, one per mailbox at a time (decision 0008, "One state check per mailbox at a
 * time, shared").
 *
 * A cached listing may be served only if the mailbox's state, as the server reports it after the
 * request arrived, is the one the page was built from (decision 0007). Requests for the same mailbox
 * therefore share one check, but only a check whose command has not been sent yet when they arrive:
 * its answer then reflects every change the server had made before each of them arrived. A request
 * that arrives after the command went out waits for the next check, which is sent once the one on
 * its way has been answered. So at most one check per mailbox is in flight, and each answers every
 * request that arrived during the one before it.
 *
 * This module knows no IMAP: the check itself is a function handed in, which calls `sending()` just
 * before its command goes out (see mailbox-sync.ts for the IMAP one).
 */

/** Runs one check; calls `sending()` right before the command leaves (again, harmlessly, on a retry). */
export type StateCheck<T> = (sending: () => void) => Promise<T>;

interface Flight<T> {
  /** The check whose command is on its way (or answered and not yet settled). */
  sent?: Promise<T>;
  /** The check not yet sent, which every request arriving now joins. */
  next?: Promise<T>;
}

export class SharedStateChecks<T> {
  private readonly flights = new Map<string, Flight<T>>();

  /** The answer of a check of `key` sent no earlier than this call; `check` runs only if none is pending. */
  check(key: string, check: StateCheck<T>): Promise<T> {
    let flight = this.flights.get(key);
    if (flight === undefined) {
      flight = {};
      this.flights.set(key, flight);
    }
    if (flight.next !== undefined) return flight.next;
    const current = flight;
    const previous: Promise<unknown> = current.sent ?? Promise.resolve();
    const pending: Promise<T> = previous
      // The one before failing is its own joiners' error; this check goes out all the same.
      .catch(() => undefined)
      .then(() =>
        check(() => {
          // From here on the command is on its way: later arrivals need the next check.
          if (current.next === pending) current.next = undefined;
          current.sent = pending;
        }),
      )
      .finally(() => {
        if (current.next === pending) current.next = undefined;
        if (current.sent === pending) current.sent = undefined;
        if (current.next === undefined && current.sent === undefined && this.flights.get(key) === current) {
          this.flights.delete(key);
        }
      });
    current.next = pending;
    return pending;
  }

  /** How many mailboxes have a check pending or in flight (for tests and leaks). */
  get size(): number {
    return this.flights.size;
  }
}
