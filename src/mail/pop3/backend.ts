/**
 * The POP3 backend: MailBackend over our POP3 client, one session per maildrop (sessions.ts).
 *
 * POP3 has one mailbox, INBOX, no flags, no folders, no search: `capabilities` is empty, and the
 * routes answer 422 NOT_SUPPORTED_BY_PROTOCOL for what needs them. Messages are named by UIDL
 * (RFC 1939 §7), the only identity that outlives a session; every operation maps the UIDL to this
 * session's message number through the session's snapshot (UIDL + LIST, read once per session).
 * When a reused session does not know a UIDL, the message may have arrived after its login, so it is
 * looked up once more in a new session before the answer is MESSAGE_NOT_FOUND.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { getJson, setJson, type Cache } from '../../cache/cache.js';
import { keys } from '../../cache/keys.js';
import { GatewayError } from '../../errors.js';
import type { EgressPolicy } from '../../net/egress.js';
import type { MailAccount, MailAccountResolver } from '../account.js';
import type { MailBackend, PartStream, RangeSelector, RawMessage } from '../backend.js';
import { decodePop3Cursor, isPop3State } from '../cursor.js';
import { messageNotFound, notSupported, onlyWeakTags, preconditionFailed } from '../mail-errors.js';
import type { MessageRef } from '../message-id.js';
import { extractAttachment } from '../mime/extract-attachment.js';
import type { Capability, ExpectedStates, ListQuery, ListResult, MailboxInfo, MessageSummary } from '../types.js';
import type { Pop3Client, Pop3Retrieval } from './client.js';
import { connectPop3 } from './connect.js';
import { Pop3ReplyError } from './errors.js';
import { pageOf } from './listing.js';
import { processLocalLease, type MaildropLease } from './maildrop-lease.js';
import { sliceMessage } from './raw-stream.js';
import { Pop3SessionManager, type SessionLease, type SessionStats } from './sessions.js';
import { readSnapshot, type Snapshot, type SnapshotEntry } from './snapshot.js';
import { headersFromTop, toSummary, type Pop3Headers } from './summary.js';
import { watchPop3Account, type Pop3Poll } from './watch.js';
import type { AccountWatch, WatchOptions, WatchSink } from '../watch.js';

export interface Pop3BackendOptions {
  resolveAccount: MailAccountResolver;
  egress: EgressPolicy;
  cache: Cache;
  /** Per-step bound on the server's silence (connect, each answer, each gap in a RETR). */
  upstreamTimeoutMs: number;
  /** How long a request may wait for its maildrop's turn before POOL_EXHAUSTED. */
  acquireTimeoutMs: number;
  /** Lifetime of cached headers (they never change; the TTL only bounds the cache). */
  headerCacheTtlSeconds: number;
  /** A session is handed to the next request only while younger than this. Default 2000 ms. */
  sessionReuseMs?: number;
  /** Requests that may wait per maildrop. Default 64. */
  maxWaitersPerMaildrop?: number;
  /**
   * When a reader stops early (a Range that ends before the message does, a client that went away),
   * up to this many remaining bytes are read and dropped to keep the session; more and the session is
   * dropped instead. Default 1 MiB.
   */
  drainLimitBytes?: number;
  /** A download whose reader leaves the session paused this long is aborted. Default: no bound. */
  readerStallTimeoutMs?: number;
  /** Cross-replica maildrop lease (src/coordination/maildrop-lease.ts, over Redis). Default: process-local only. */
  maildropLease?: MaildropLease;
  /** Whether the event source is running (so `events` is a capability). */
  events?: boolean;
  /** Extra TLS trust anchors (tests: the test server's self-signed certificate). */
  tlsCa?: string | Buffer | Array<string | Buffer>;
  log: Logger;
}

const POP3_MAILBOX: MailboxInfo = {
  path: 'INBOX',
  name: 'INBOX',
  delimiter: null,
  parent: null,
  specialUse: null,
  specialUseSource: null,
  subscribed: true,
  flags: [],
};

export class Pop3Backend implements MailBackend {
  private readonly sessions: Pop3SessionManager;
  private readonly commands = new Map<string, number>();

  constructor(private readonly options: Pop3BackendOptions) {
    this.sessions = new Pop3SessionManager({
      connect: (account) => this.connect(account),
      reuseMs: options.sessionReuseMs ?? 2_000,
      acquireTimeoutMs: options.acquireTimeoutMs,
      maxWaiters: options.maxWaitersPerMaildrop ?? 64,
      quitTimeoutMs: Math.min(options.upstreamTimeoutMs, 5_000),
      lease: options.maildropLease ?? processLocalLease,
      log: options.log,
    });
  }

  /** Logs in with these settings (a new session, whatever is idle) and QUITs. POP3 has no capabilities. */
  async verify(account: MailAccount): Promise<Capability[]> {
    const lease = await this.sessions.acquire(account, { fresh: true });
    await lease.quit().catch(() => undefined);
    return this.capabilities(account.id) ?? [];
  }

  /** POP3 supports none of folders, flags, search, move, copy, append, changes; events by UIDL polls. */
  capabilities(_accountId: string): Capability[] | null {
    return this.options.events ? ['events'] : [];
  }

  capabilitiesOf(accountId: string): Capability[] {
    return this.capabilities(accountId) ?? [];
  }

  async listMailboxes(accountId: string, options: { counts: boolean }): Promise<MailboxInfo[]> {
    if (!options.counts) return [{ ...POP3_MAILBOX }];
    const messages = await this.run(accountId, async (lease) => (await this.snapshot(lease)).entries.length);
    // POP3 keeps no seen state: every message counts as unseen, as every summary says `seen: false`.
    return [{ ...POP3_MAILBOX, counts: { messages, unseen: messages, uidNext: null, uidValidity: null } }];
  }

  async listMessages(accountId: string, mailbox: string, query: ListQuery): Promise<ListResult> {
    checkMailbox(mailbox);
    // The routes answer this first; kept here so no caller can get a silently unfiltered listing.
    if (query.filters !== undefined) throw notOnPop3('Listing filters');
    // A bad cursor is the caller's mistake: say so before any session is opened.
    const cursor = query.cursor === undefined ? null : decodePop3Cursor(query.cursor);
    return this.run(accountId, async (lease) => {
      const snapshot = await this.snapshot(lease);
      if (query.ifNoneMatch === snapshot.state) return { notModified: true, state: snapshot.state };
      const page = pageOf(snapshot, cursor, query.limit);
      const messages = await this.summaries(accountId, lease.session.client, page.entries);
      return { messages, nextCursor: page.nextCursor, total: snapshot.entries.length, state: snapshot.state };
    });
  }

  async getSummary(
    accountId: string,
    mailbox: string,
    ref: MessageRef,
    options: { markSeen: boolean },
  ): Promise<MessageSummary> {
    checkMailbox(mailbox);
    if (options.markSeen) throw notOnPop3('markSeen (POP3 has no flags)');
    const uidl = pop3Uidl(ref);
    return this.run(accountId, async (lease) => {
      const entry = await this.find(lease, uidl);
      const [summary] = await this.summaries(accountId, lease.session.client, [entry]);
      if (summary === undefined) throw messageNotFound();
      return summary;
    });
  }

  async openRaw(accountId: string, mailbox: string, ref: MessageRef, rangeFor?: RangeSelector): Promise<RawMessage> {
    checkMailbox(mailbox);
    const uidl = pop3Uidl(ref);
    const { lease, entry, retrieval, value: range } = await this.retrieve(accountId, uidl, (e) => {
      return rangeFor?.(e.size) ?? { start: 0, end: e.size };
    });
    const stream = sliceMessage(retrieval.stream, range, entry.size);
    this.settleWith(lease, entry, retrieval);
    return { size: entry.size, range, stream };
  }

  async openPart(accountId: string, mailbox: string, ref: MessageRef, partId: string): Promise<PartStream> {
    checkMailbox(mailbox);
    const uidl = pop3Uidl(ref);
    const { lease, entry, retrieval } = await this.retrieve(accountId, uidl, () => undefined);
    this.settleWith(lease, entry, retrieval);
    // The parser drains whatever it does not need, so the RETR always reaches its end (or the
    // drain limit drops the session); the lease goes back when it does.
    const attachment = await extractAttachment(retrieval.stream, partId);
    if (attachment === null) throw new GatewayError('ATTACHMENT_NOT_FOUND', `No attachment ${partId} in this message`);
    const content: Readable = attachment.content;
    content.once('close', () => this.dropIfMuchLeft(lease, entry, retrieval));
    return { stream: content, size: attachment.size ?? null };
  }

  parsedCacheKey(accountId: string, _mailbox: string, ref: MessageRef): string {
    return keys.pop3Message(accountId, pop3Uidl(ref));
  }

  /**
   * Deletes one message: DELE, then QUIT, which is what commits it (RFC 1939 §6); resolves only once
   * QUIT was answered +OK. With `expected` (If-Match, decision 0010) the maildrop's state (the digest
   * of its UIDL list) must be one of them, checked in the same session as the DELE, before it. A failure before that leaves the message where it was (the session is
   * dropped without QUIT) and rejects with UPSTREAM_ERROR saying the message may still be there.
   */
  async deleteMessage(accountId: string, mailbox: string, ref: MessageRef, expected?: ExpectedStates): Promise<void> {
    checkMailbox(mailbox);
    const uidl = pop3Uidl(ref);
    const account = await this.options.resolveAccount(accountId);
    // Under If-Match the maildrop is compared as it is now: a new login, whose snapshot is taken
    // after the request arrived (a reused session sees the maildrop as it was at its login).
    const lease = await this.sessions.acquire(account, { fresh: expected !== undefined });
    try {
      const entry = await this.find(lease, uidl);
      if (expected !== undefined) checkMaildropState((await this.snapshot(lease)).state, expected);
      await lease.session.client.dele(entry.number);
    } catch (err) {
      // Nothing is marked deleted (DELE failed or was never sent): the session may be reused.
      this.giveBack(lease);
      throw mapMessageError(err);
    }
    try {
      await lease.quit();
    } catch (err) {
      throw new GatewayError(
        'UPSTREAM_ERROR',
        'The mail server did not confirm the delete (QUIT failed), so the message may still be there',
        { cause: err },
      );
    }
    await this.options.cache.delete([keys.pop3Headers(accountId, uidl), keys.pop3Message(accountId, uidl)]);
  }

  async dropAccount(accountId: string): Promise<void> {
    await this.sessions.dropAccount(accountId);
  }

  async close(): Promise<void> {
    await this.sessions.close();
  }

  /** Sessions: opened so far, open now, most at once on one maildrop, waiting requests. */
  sessionStats(): SessionStats {
    return this.sessions.stats();
  }

  /** Commands sent so far, by verb (TOP, RETR, UIDL, ...): for metrics and tests. */
  commandCounts(): Record<string, number> {
    return Object.fromEntries(this.commands);
  }

  // --- internals --------------------------------------------------------------------------------

  private connect(account: MailAccount): Promise<Pop3Client> {
    return connectPop3(account, {
      egress: this.options.egress,
      timeoutMs: this.options.upstreamTimeoutMs,
      readerStallTimeoutMs: this.options.readerStallTimeoutMs,
      ca: this.options.tlsCa,
      onCommand: (verb) => this.commands.set(verb, (this.commands.get(verb) ?? 0) + 1),
    });
  }

  /** Watches the maildrop by UIDL polls (watch.ts); `events` then names the account's capability. */
  watch(accountId: string, sink: WatchSink, options: WatchOptions): AccountWatch {
    return watchPop3Account({
      accountId,
      poll: (known) => this.pollMaildrop(accountId, known),
      sink,
      pollIntervalMs: options.pop3PollIntervalMs,
      log: this.options.log,
    });
  }

  /** The maildrop as a fresh login sees it (RFC 1939 §8), with summaries of what `known` lacks. */
  private pollMaildrop(accountId: string, known: ReadonlySet<string> | null): Promise<Pop3Poll> {
    return this.run(accountId, async (lease) => {
      if (!lease.fresh) await lease.renew();
      const snapshot = await this.snapshot(lease);
      const arrived = known === null ? [] : snapshot.entries.filter((e) => !known.has(e.uidl));
      return {
        uidls: snapshot.entries.map((e) => e.uidl),
        arrived: await this.summaries(accountId, lease.session.client, arrived),
      };
    });
  }

  /** Runs `work` on the account's session and gives the session back (or drops it when it broke). */
  private async run<T>(accountId: string, work: (lease: SessionLease) => Promise<T>): Promise<T> {
    const account = await this.options.resolveAccount(accountId);
    const lease = await this.sessions.acquire(account);
    try {
      const value = await work(lease);
      lease.release();
      return value;
    } catch (err) {
      this.giveBack(lease);
      throw mapMessageError(err);
    }
  }

  private giveBack(lease: SessionLease): void {
    if (lease.session.client.usable) lease.release();
    else lease.discard();
  }

  private async snapshot(lease: SessionLease): Promise<Snapshot> {
    const session = lease.session;
    session.snapshot ??= await readSnapshot(session.client);
    return session.snapshot;
  }

  /** The entry for a UIDL; a reused session that lacks it is renewed once (the message may be newer). */
  private async find(lease: SessionLease, uidl: string): Promise<SnapshotEntry> {
    let entry = (await this.snapshot(lease)).byUidl.get(uidl);
    if (entry === undefined && !lease.fresh) {
      await lease.renew();
      entry = (await this.snapshot(lease)).byUidl.get(uidl);
    }
    if (entry === undefined) throw messageNotFound();
    return entry;
  }

  /** Leases a session, finds the message, lets `decide` pick (and validate) before RETR is sent. */
  private async retrieve<T>(
    accountId: string,
    uidl: string,
    decide: (entry: SnapshotEntry) => T,
  ): Promise<{ lease: SessionLease; entry: SnapshotEntry; retrieval: Pop3Retrieval; value: T }> {
    const account = await this.options.resolveAccount(accountId);
    const lease = await this.sessions.acquire(account);
    try {
      const entry = await this.find(lease, uidl);
      const value = decide(entry);
      const retrieval = await lease.session.client.retr(entry.number);
      return { lease, entry, retrieval, value };
    } catch (err) {
      this.giveBack(lease);
      throw mapMessageError(err);
    }
  }

  /**
   * The lease goes back when the RETR answer has been read to its end, and is dropped when it failed.
   * A reader that stops early leaves the rest to drain, unless much is left (then the session goes).
   */
  private settleWith(lease: SessionLease, entry: SnapshotEntry, retrieval: Pop3Retrieval): void {
    retrieval.done.then(
      () => this.giveBack(lease),
      () => lease.discard(),
    );
    retrieval.stream.once('close', () => this.dropIfMuchLeft(lease, entry, retrieval));
  }

  private dropIfMuchLeft(lease: SessionLease, entry: SnapshotEntry, retrieval: Pop3Retrieval): void {
    if (retrieval.stream.received) return;
    const leftBytes = entry.size - retrieval.stream.bytesDecoded;
    if (leftBytes > (this.options.drainLimitBytes ?? 1024 * 1024)) lease.session.client.destroy();
  }

  /** Summaries for these entries: headers from the cache, else `TOP n 0` (then cached). */
  private async summaries(accountId: string, client: Pop3Client, entries: SnapshotEntry[]): Promise<MessageSummary[]> {
    const { cache } = this.options;
    const cached = await Promise.all(
      entries.map((e) => getJson<Pop3Headers>(cache, keys.pop3Headers(accountId, e.uidl))),
    );
    const out: MessageSummary[] = [];
    for (const [i, entry] of entries.entries()) {
      let headers = cached[i] ?? null;
      if (headers === null) {
        headers = await this.topHeaders(client, entry);
        if (headers !== null) {
          await setJson(cache, keys.pop3Headers(accountId, entry.uidl), headers, this.options.headerCacheTtlSeconds);
        }
      }
      out.push(toSummary(entry, headers));
    }
    return out;
  }

  /** `TOP n 0`; null when the server refuses it (TOP is optional, RFC 1939 §7): the summary goes without. */
  private async topHeaders(client: Pop3Client, entry: SnapshotEntry): Promise<Pop3Headers | null> {
    try {
      return await headersFromTop(await client.top(entry.number, 0));
    } catch (err) {
      if (err instanceof Pop3ReplyError && client.usable) return null;
      throw err;
    }
  }
}

/** POP3 has INBOX only (case-insensitive, like IMAP's INBOX). */
function checkMailbox(mailbox: string): void {
  if (mailbox.toUpperCase() !== 'INBOX') {
    throw new GatewayError('MAILBOX_NOT_FOUND', `No mailbox ${mailbox}: a POP3 account has INBOX only`);
  }
}

function pop3Uidl(ref: MessageRef): string {
  if (ref.kind !== 'pop3') throw messageNotFound();
  return ref.uidl;
}

/** What POP3 (RFC 1939) has no command for. */
function notOnPop3(what: string): GatewayError {
  return notSupported(`${what} is not supported on a POP3 account`);
}

/**
 * A plain -ERR to a command on a message we just found in the snapshot (RETR, TOP, DELE): the server
 * no longer has it (expunged by another client since the login).
 */
function mapMessageError(err: unknown): unknown {
  if (
    err instanceof Pop3ReplyError &&
    err.responseCode === null &&
    (err.command === 'RETR' || err.command === 'DELE' || err.command === 'TOP')
  ) {
    return messageNotFound('The mail server no longer has this message', { cause: err });
  }
  return err;
}

/**
 * A POP3 maildrop's state changes only when messages arrive or leave (POP3 has no flags); the check
 * runs on the session's snapshot, taken at its login (RFC 1939 §8), in the session that then DELEs.
 */
function checkMaildropState(current: string, expected: ExpectedStates): void {
  if (expected.states.includes(current)) return;
  if (expected.states.length === 0) throw onlyWeakTags();
  const ours = expected.states.some(isPop3State);
  throw preconditionFailed(ours ? 'The maildrop changed since this state: messages arrived or were removed' : 'The If-Match state is not a listing state of this maildrop');
}
