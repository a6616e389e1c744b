/**
 * Watches one IMAP account (API.md, Events): every selectable mailbox, not only INBOX.
 *
 * The watcher holds one session of the account's pool (counted toward the account's session cap
 * in every process) with INBOX selected and IDLE running (RFC 2177), so a change in INBOX is pushed
 * at once. Other mailboxes are watched with NOTIFY (RFC 5465) where the server offers it: the
 * server pushes a STATUS or LIST when any of them moves. Without NOTIFY the folder list and every
 * mailbox's state are read with one LIST-STATUS (RFC 5819) each `pollIntervalMs`, on the same
 * session. Either way only mailboxes whose state moved are fetched (mailbox-diff.ts): INBOX on the
 * watcher's session, others on a pool session that may already have them selected, so the
 * watcher's session never leaves INBOX.
 *
 * A lost session or a refused login is retried with capped exponential back-off (never a hot
 * loop); the first failed attempt stores an `account.error`, the first success after it an
 * `account.recovered`. Every event is stored (WatchSink.record) before the state that follows it.
 */
import type { ImapFlow } from 'imapflow';
import type { Logger } from 'pino';
import type { MailboxWatchState, NewEvent, WatchStateChange } from '../../../events/types.js';
import { GatewayError } from '../../../errors.js';
import { AccountHealth } from '../../account-health.js';
import type { AccountWatch, WatchOptions, WatchSink } from '../../watch.js';
import { mapImapError } from '../errors.js';
import { encodeImapMessageId } from '../../message-id.js';
import type { Lease } from '../pool.js';
import { diffSelectedMailbox, selectedState, type StoredMailbox } from './mailbox-diff.js';
import { compareLists, listChecked, sameState } from './mailbox-list.js';
import { enableNotify, listedNames, offersNotify } from './notify.js';
import type { Semaphore } from '../../../util/semaphore.js';

export interface ImapWatcherDeps {
  accountId: string;
  /** A session of the account's pool, held until evicted (counted in the account's cap). */
  leaseSession: () => Promise<Lease>;
  /** Runs `work` on a pool session (no mailbox asked for). */
  onSession: <T>(work: (client: ImapFlow) => Promise<T>) => Promise<T>;
  /** Runs `work` on a pool session with `path` selected and synchronised. */
  onMailbox: <T>(path: string, work: (client: ImapFlow) => Promise<T>) => Promise<T>;
  sink: WatchSink;
  options: WatchOptions;
  log: Logger;
  /** Back-off bounds between failed attempts. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /**
   * Shared by every watcher of the process: a permit is held from the login until the first look of
   * the session is done. A gateway starting (or a mail server coming back) with a thousand accounts
   * to watch then logs in a few at a time rather than all at once: the server is not stormed, and the
   * looks' working memory dies young instead of piling up for a thousand at once.
   */
  startGate?: Semaphore;
}

const INBOX = 'INBOX';

/** After a look that a push asked for, the folder list is looked at once more this much later. */
const FOLLOW_UP_MS = 500;

/** After a push, the folder names are compared at every poll for this long (see `namesUntilMs`). */
const NAMES_WATCH_MS = 10_000;

/** Names that differ through this many looks that report nothing are taken as they are (a \Noselect parent, say). */
const NAMES_TRIES = 3;

/**
 * A watcher session that has sent nothing for this long ends its IDLE with a NOOP and starts it
 * again: RFC 2177 asks clients to restart IDLE at least every 29 minutes, or the server may log them
 * out. Not more often: the connection is kept alive under NATs by TCP keepalive (imapflow turns it on)
 * and by the server's own untagged "still here" during IDLE, and a server gone silent is found by
 * imapflow's socket timeout (IMAP_SESSION_IDLE_TIMEOUT_MS plus a minute) — a thousand quiet accounts
 * must not cost a thousand NOOPs every two minutes.
 */
const KEEPALIVE_MS = 25 * 60_000;

export function watchImapAccount(deps: ImapWatcherDeps): AccountWatch {
  const watcher = new ImapAccountWatcher(deps);
  watcher.start();
  return watcher;
}

class ImapAccountWatcher implements AccountWatch {
  private stopped = false;
  private readonly stopping = new AbortController();
  /** Gives back the start permit (startGate) while this watcher holds one. */
  private releaseStart: (() => void) | null = null;
  private running: Promise<void> | undefined;
  private lease: Lease | undefined;
  /** Wakes the session loop (a push, a poll, stop). */
  private wake: () => void = () => undefined;
  private listDue = true;
  private inboxDue = true;
  /** What was stored of each mailbox, as this watcher knows it (loaded once per session). */
  private states = new Map<string, MailboxWatchState>();
  private messages = new Map<string, Map<string, string[]>>();
  private baseline = false;
  /**
   * The server pushes changes of every mailbox (NOTIFY). Then the watcher's session runs nothing but
   * IDLE and NOOP: imapflow hands an untagged STATUS or LIST that arrives while one of its own STATUS
   * or LIST commands runs to that command, not mailbox by mailbox (a pushed `STATUS Work (...)` during
   * `STATUS INBOX` would be taken for INBOX's), so pushes would be lost or misread. Looks run on pool
   * sessions instead, which never have NOTIFY set.
   */
  private pushes = false;
  /** The next look at the folder list was asked for by a push (not by the clock). */
  private pushed = false;
  /**
   * Under NOTIFY the folder names are compared on the watcher's own session (listedNames) at every
   * poll until this time: for a while after each push, and for as long as they differ from what the
   * last look saw. A pushed change of the folder list may reach a look on a pool session before that
   * session's list shows it (Dovecot 2.3's list index lags in a long-lived session); a quiet account
   * costs nothing between two reconciling looks.
   */
  private namesUntilMs = 0;
  /**
   * When the names are compared next. A push has them compared at once, before the look it asks for:
   * this session's LIST brings the account's list index up to date, which a pool session's LIST then
   * reads.
   */
  private nextNamesMs = 0;
  /** Names that differed from the last look's, until a look reports the move. */
  private pendingNames: string | null = null;
  private seenAtMs = 0;

  private readonly health: AccountHealth;

  constructor(private readonly deps: ImapWatcherDeps) {
    this.health = new AccountHealth(deps.accountId, deps.sink, deps.log, deps.retryMinMs, deps.retryMaxMs);
  }

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    this.wake();
    this.lease?.evict();
    await this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const delayMs = this.health.nextDelayMs();
      if (delayMs > 0) await this.sleep(delayMs);
      if (this.stopped) break;
      try {
        if (this.deps.startGate) this.releaseStart = await this.deps.startGate.acquire(this.stopping.signal);
      } catch {
        break; // stopped while waiting for its turn
      }
      let lease: Lease;
      try {
        lease = await this.deps.leaseSession();
      } catch (err) {
        this.startDone();
        const mapped = mapImapError(err);
        // The account was deleted: there is nothing left to watch. Say so, so that its streams end
        // and nobody keeps this dead watcher's lease (or retries it) for them.
        if (mapped.code === 'ACCOUNT_NOT_FOUND') {
          if (!this.stopped) this.deps.sink.gone?.();
          break;
        }
        await this.health.failed(mapped);
        continue;
      }
      if (this.stopped) {
        this.startDone();
        lease.evict();
        break;
      }
      this.lease = lease;
      const startedMs = performance.now();
      try {
        await this.health.succeeded();
        await this.session(lease.client);
      } catch (err) {
        if (this.stopped) break;
        const mapped = mapImapError(err);
        this.deps.log.warn({ account: this.deps.accountId, code: mapped.code, err: { message: mapped.message } }, 'imap watcher session ended');
        this.health.dropped(mapped.code, performance.now() - startedMs);
      } finally {
        this.startDone();
        lease.evict();
        this.lease = undefined;
      }
    }
  }

  /** The session's first look is done (or it ended before): the next watcher may log in. */
  private startDone(): void {
    this.releaseStart?.();
    this.releaseStart = null;
  }

  /** Runs one session until it breaks or the watcher stops. */
  private async session(client: ImapFlow): Promise<void> {
    this.states = await this.deps.sink.loadStates();
    this.messages.clear();
    this.baseline = this.states.size === 0;
    this.listDue = true;
    this.inboxDue = true;
    this.seenAtMs = performance.now();
    this.namesUntilMs = 0;
    this.nextNamesMs = 0;
    this.pendingNames = null;

    const onInbox = (): void => {
      if (client.mailbox && client.mailbox.path === INBOX) this.signal('inbox');
    };
    client.on('exists', onInbox);
    client.on('expunge', onInbox);
    client.on('flags', onInbox);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    try {
      await client.mailboxOpen(INBOX);
      this.pushes = offersNotify(client);
      if (this.pushes) await enableNotify(client, () => this.signal('list'));
      let nextListMs = 0;
      let nextKeepaliveMs = performance.now() + KEEPALIVE_MS;
      let idle: Promise<void> | null = null;
      // The folder names as of the last look that agreed with them (see `namesUntilMs`).
      let names = this.pushes ? await listedNames(client) : null;
      let namesTries = 0;
      while (!this.stopped && client.usable) {
        const nowMs = performance.now();
        if (nowMs >= nextListMs) {
          this.listDue = true;
          nextListMs = nowMs + (this.pushes ? this.deps.options.reconcileIntervalMs : this.deps.options.pollIntervalMs);
        }
        if (names !== null && nowMs < this.namesUntilMs && nowMs >= this.nextNamesMs) {
          this.nextNamesMs = nowMs + this.deps.options.pollIntervalMs;
          // imapflow breaks IDLE only for its own commands, not for a raw one: a NOOP does it first.
          await client.noop();
          const current = await listedNames(client);
          nextKeepaliveMs = performance.now() + KEEPALIVE_MS;
          if (current !== names) {
            // The names moved: a look follows. Until a look reports the move (a pool session's
            // list may lag behind this one's), they are compared again at the next poll.
            this.listDue = true;
            this.namesUntilMs = Math.max(this.namesUntilMs, performance.now() + 2 * this.deps.options.pollIntervalMs);
            if (++namesTries >= NAMES_TRIES) {
              names = current;
              namesTries = 0;
            } else {
              this.pendingNames = current;
            }
          }
        }
        if (this.listDue) {
          const pushed = this.pushed;
          this.listDue = false;
          this.pushed = false;
          const listChanged = await this.lookAtList(client);
          nextKeepaliveMs = performance.now() + KEEPALIVE_MS;
          if (listChanged && this.pendingNames !== null) {
            names = this.pendingNames;
            namesTries = 0;
          }
          this.pendingNames = null;
          // Dovecot may push a change of the folder list a moment before its LIST shows it: one
          // more look shortly after each pushed one catches that (a look costs one LIST-STATUS).
          if (pushed) nextListMs = Math.min(nextListMs, performance.now() + FOLLOW_UP_MS);
        }
        if (this.inboxDue) {
          this.inboxDue = false;
          await this.lookAtInbox(client);
          nextKeepaliveMs = performance.now() + KEEPALIVE_MS;
        }
        if (this.listDue || this.inboxDue || this.stopped) continue;
        this.startDone();
        if (performance.now() >= nextKeepaliveMs) {
          // RFC 2177: IDLE restarted at least every 29 minutes (KEEPALIVE_MS).
          await client.noop();
          nextKeepaliveMs = performance.now() + KEEPALIVE_MS;
          continue;
        }
        // Under NOTIFY nothing runs on this session between two waits, so its IDLE may still be on:
        // wait for that one rather than racing an IDLE that resolves at once (a loop that never
        // yields to I/O).
        if (idle === null) {
          idle = client.idle().then(
            () => {
              idle = null;
            },
            () => {
              idle = null;
            },
          );
        }
        const namesAtMs = performance.now() < this.namesUntilMs ? this.nextNamesMs : Infinity;
        const wakeInMs = Math.max(0, Math.min(nextListMs, nextKeepaliveMs, namesAtMs) - performance.now());
        await Promise.race([idle, closed, this.nextWake(wakeInMs)]);
      }
      if (!this.stopped && !client.usable) throw new GatewayError('UPSTREAM_ERROR', 'The connection to the mail server was lost');
    } finally {
      client.off('exists', onInbox);
      client.off('expunge', onInbox);
      client.off('flags', onInbox);
    }
  }

  private signal(what: 'inbox' | 'list'): void {
    this.seenAtMs = performance.now();
    if (what === 'inbox') this.inboxDue = true;
    else {
      this.listDue = this.pushed = true;
      this.namesUntilMs = this.seenAtMs + NAMES_WATCH_MS;
      this.nextNamesMs = this.seenAtMs;
    }
    this.wake();
  }

  private nextWake(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  private sleep(ms: number): Promise<void> {
    return this.nextWake(ms);
  }

  /** The folder list: mailbox events, and a look at every mailbox whose state moved. Whether the list itself changed. */
  private async lookAtList(client: ImapFlow): Promise<boolean> {
    const seenAtMs = this.seenAtMs;
    // Under NOTIFY the watcher's own session runs no LIST or STATUS (see `pushes`).
    const known = [...this.states.keys()];
    const listed = this.pushes ? await this.deps.onSession((c) => listChecked(c, known)) : await listChecked(client, known);
    const moves = compareLists(this.states, listed, { baseline: this.baseline, seenAtMs });
    const changes: WatchStateChange[] = [];
    for (const path of moves.deleted) changes.push({ mailbox: path, state: null });
    // A new mailbox is recorded as empty under its UIDVALIDITY at once, with its creation event:
    // a rename or delete that follows before it is fetched is then still told apart, and the
    // fetch that follows reports every message in it as new.
    const listedStates = new Map(listed.map((m) => [m.path, m.state]));
    for (const path of moves.created) {
      const state = listedStates.get(path);
      if (state && !this.baseline) changes.push({ mailbox: path, state: { uidValidity: state.uidValidity, uidNext: 1, highestModseq: null, messages: 0 }, replace: true });
    }
    for (const r of moves.renamed) {
      // The renamed mailbox keeps its messages: its stored state moves with it.
      const kept = this.messages.get(r.from) ?? (await this.deps.sink.loadMessages(r.from));
      changes.push({ mailbox: r.from, state: null });
      const state = this.states.get(r.from);
      if (state) changes.push({ mailbox: r.to, state, replace: true, set: [...kept] });
    }
    if (moves.events.length > 0 || changes.length > 0) {
      await this.deps.sink.record(moves.events, changes);
      for (const c of changes) this.apply(c);
      for (const r of moves.renamed) {
        const kept = this.messages.get(r.from);
        if (kept) this.messages.set(r.to, kept);
        this.messages.delete(r.from);
      }
    }
    const listChanged = moves.events.length > 0 || changes.length > 0;
    for (const path of moves.moved) {
      if (this.stopped) return listChanged;
      const listedState = listedStates.get(path);
      if (path === INBOX) await this.lookAtInbox(client);
      else if (listedState !== undefined && listedState.messages === 0) await this.emptied(path, listedState, seenAtMs);
      else await this.lookAtMailbox(path, seenAtMs);
    }
    // Whatever was there at the first look is recorded; from now on changes are reported.
    this.baseline = false;
    return listChanged;
  }

  private async lookAtInbox(client: ImapFlow): Promise<void> {
    if (this.pushes) return this.lookAtMailbox(INBOX, this.seenAtMs);
    const seenAtMs = this.seenAtMs;
    const state = await selectedState(client);
    const diff = await diffSelectedMailbox(client, await this.stored(INBOX), state, { baseline: this.baseline, seenAtMs });
    await this.store(diff.events, diff.change, diff.messages);
  }

  private async lookAtMailbox(path: string, seenAtMs: number): Promise<void> {
    const stored = await this.stored(path);
    const baseline = this.baseline;
    try {
      const diff = await this.deps.onMailbox(path, async (client) => {
        const state = await selectedState(client);
        return diffSelectedMailbox(client, stored, state, { baseline, seenAtMs });
      });
      await this.store(diff.events, diff.change, diff.messages);
    } catch (err) {
      // Deleted between the LIST and the SELECT: the next look at the list reports it.
      if (err instanceof GatewayError && err.code === 'MAILBOX_NOT_FOUND') {
        this.listDue = true;
        return;
      }
      throw err;
    }
  }

  /**
   * A mailbox the LIST-STATUS says is empty needs no session: whatever was stored in it is gone
   * (under the same UIDVALIDITY: deleted; under another, the old ids are gone all the same). Most
   * folders of most accounts are empty, so a first watch of many accounts logs in once per account.
   */
  private async emptied(path: string, state: MailboxWatchState, seenAtMs: number): Promise<void> {
    const stored = await this.stored(path);
    const previous = stored.state;
    if (previous !== null && stored.messages.size === 0 && sameState(previous, state)) return;
    const events: NewEvent[] = [];
    if (!this.baseline && previous !== null) {
      const at = new Date().toISOString();
      for (const key of stored.messages.keys()) {
        const messageId = encodeImapMessageId(BigInt(previous.uidValidity), Number(key));
        events.push({ type: 'message.deleted', mailbox: path, at, seenAtMs, fields: { messageId } });
      }
    }
    await this.store(events, { mailbox: path, state, replace: true, set: [] }, new Map());
  }

  private async stored(path: string): Promise<StoredMailbox> {
    let messages = this.messages.get(path);
    if (messages === undefined) {
      messages = this.states.has(path) ? await this.deps.sink.loadMessages(path) : new Map();
      this.messages.set(path, messages);
    }
    return { state: this.states.get(path) ?? null, messages };
  }

  private async store(events: NewEvent[], change: WatchStateChange, messages: Map<string, string[]>): Promise<void> {
    const before = this.states.get(change.mailbox);
    const unchanged = events.length === 0 && before !== undefined && change.state !== null && sameState(before, change.state) && !change.replace && (change.set?.length ?? 0) === 0 && (change.remove?.length ?? 0) === 0;
    if (!unchanged) await this.deps.sink.record(events, [change]);
    this.apply(change);
    this.messages.set(change.mailbox, messages);
  }

  private apply(change: WatchStateChange): void {
    if (change.state === null) {
      this.states.delete(change.mailbox);
      this.messages.delete(change.mailbox);
    } else {
      this.states.set(change.mailbox, change.state);
    }
  }
}
