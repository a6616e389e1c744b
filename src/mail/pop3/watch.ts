/**
 * Watches one POP3 maildrop (API.md, Events): POP3 has no push and a session sees the maildrop as
 * it was at login (RFC 1939 §8), so every `pollIntervalMs` a fresh session reads the UIDL list and
 * compares it with the stored one: `message.new` (with the listing summary, from `TOP n 0`) for a
 * UIDL not seen before, `message.deleted` for one that went. The poll takes its turn on the
 * maildrop like any request (one session per maildrop, across processes), so it never makes a
 * server with maildrop locks answer `[IN-USE]`.
 */
import type { Logger } from 'pino';
import type { MailboxWatchState, NewEvent, WatchStateChange } from '../../events/types.js';
import { AccountHealth } from '../account-health.js';
import { encodePop3MessageId } from '../message-id.js';
import type { MessageSummary } from '../types.js';
import type { AccountWatch, WatchSink } from '../watch.js';
import { GatewayError, isGatewayError } from '../../errors.js';

export interface Pop3Poll {
  /** Every UIDL of the maildrop, oldest first. */
  uidls: string[];
  /** Summaries of the messages whose UIDL is not in `known` (none asked for: empty). */
  arrived: MessageSummary[];
}

export interface Pop3WatcherDeps {
  accountId: string;
  /** Reads the maildrop on a fresh session; `known` null means "record only, no summaries". */
  poll: (known: ReadonlySet<string> | null) => Promise<Pop3Poll>;
  sink: WatchSink;
  pollIntervalMs: number;
  log: Logger;
  retryMinMs?: number;
  retryMaxMs?: number;
}

const INBOX = 'INBOX';

export function watchPop3Account(deps: Pop3WatcherDeps): AccountWatch {
  let stopped = false;
  let wake: () => void = () => undefined;
  const health = new AccountHealth(deps.accountId, deps.sink, deps.log, deps.retryMinMs, deps.retryMaxMs);
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      wake = done;
    });

  const running = (async () => {
    let known: Set<string> | null = null;
    let stored: MailboxWatchState | null = null;
    while (!stopped) {
      try {
        if (known === null) {
          stored = (await deps.sink.loadStates()).get(INBOX) ?? null;
          known = stored === null ? null : new Set((await deps.sink.loadMessages(INBOX)).keys());
        }
        const seenAtMs = performance.now();
        const polled = await deps.poll(known);
        await health.succeeded();
        const { events, change } = compare(known, polled, seenAtMs);
        if (events.length > 0 || change.replace || stored === null || stored.messages !== polled.uidls.length) {
          await deps.sink.record(events, [change]);
        }
        known = new Set(polled.uidls);
        stored = change.state;
      } catch (err) {
        if (stopped) break;
        // The account was deleted: say so (its streams end, its lease is given up) and stop.
        if (isGatewayError(err) && err.code === 'ACCOUNT_NOT_FOUND') {
          deps.sink.gone?.();
          break;
        }
        await health.failed(isGatewayError(err) ? err : new GatewayError('UPSTREAM_ERROR', 'The POP3 server could not be read', { cause: err }));
      }
      if (stopped) break;
      await sleep(health.nextDelayMs() || deps.pollIntervalMs);
    }
  })();

  return {
    async stop() {
      stopped = true;
      wake();
      await running;
    },
  };
}

function compare(known: ReadonlySet<string> | null, polled: Pop3Poll, seenAtMs: number): { events: NewEvent[]; change: WatchStateChange } {
  const state: MailboxWatchState = { uidValidity: '', uidNext: 0, highestModseq: null, messages: polled.uidls.length };
  if (known === null) {
    return { events: [], change: { mailbox: INBOX, state, replace: true, set: polled.uidls.map((u) => [u, []]) } };
  }
  const now = new Set(polled.uidls);
  const at = new Date().toISOString();
  const events: NewEvent[] = [];
  const gone = [...known].filter((u) => !now.has(u));
  for (const uidl of gone) {
    events.push({ type: 'message.deleted', mailbox: INBOX, at, seenAtMs, fields: { messageId: encodePop3MessageId(uidl) } });
  }
  for (const message of polled.arrived) events.push({ type: 'message.new', mailbox: INBOX, at, seenAtMs, fields: { message } });
  const added = polled.uidls.filter((u) => !known.has(u));
  return {
    events,
    change: { mailbox: INBOX, state, set: added.map((u) => [u, []]), ...(gone.length > 0 ? { remove: gone } : {}) },
  };
}
