/**
 * The IMAP backend: MailBackend over per-account pools of imapflow sessions. A facade: it leases a
 * session (pool.ts), selects and synchronises the mailbox (mailbox-sync.ts), bounds the work in time
 * and maps errors; the work itself lives in one module per operation, and listings' shared state
 * checks in state-check.ts.
 */
import type { Readable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import type { Logger } from 'pino';
import { GatewayError } from '../../errors.js';
import { keys } from '../../cache/keys.js';
import type { EgressPolicy } from '../../net/egress.js';
import type { MailAccount, MailAccountResolver } from '../account.js';
import type { MailBackend, PartStream, RangeSelector, RawMessage } from '../backend.js';
import { messageNotFound } from '../mail-errors.js';
import { encodeImapMessageId, type MessageRef } from '../message-id.js';
import type {
  Capability,
  FlagChanges,
  ListQuery,
  ListResult,
  MailboxChanges,
  MailboxChangesResult,
  MailboxInfo,
  EncodedPage,
  ExpectedStates,
  MessageLocation,
  MessageSummary,
} from '../types.js';
import { appendMessage } from './append.js';
import { expungeMessage } from './expunge.js';
import { flagsToAddAndRemove, storeFlags, storeFlagsIfCurrent } from './flags.js';
import { createMailbox, deleteMailbox, describeMailbox, renameMailbox, setSubscribed } from './mailbox-admin.js';
import { transferMessage } from './transfer.js';
import { changesSince, lacksQresync } from './changes.js';
import { decodeImapState } from '../cursor.js';
import { connectImap } from './connect.js';
import { mapImapError } from './errors.js';
import { listPage, mailboxState, pageStateNow, selectedMailbox } from './listing.js';
import { cacheable, type ListingCache } from './listing-cache.js';
import { listingState, selectMailbox } from './mailbox-sync.js';
import { listMailboxes } from './mailboxes.js';
import { SharedStateChecks } from './state-check.js';
import { AccountPool, PoolClosed, type Lease, type LeaseKind, type PoolStats } from './pool.js';
import { createChunkStream, takeFirstBytes, type ChunkStreamOptions } from './chunk-stream.js';
import { findBodyPart, servesAsParsed, type ParsedPart } from './body-part.js';
import { extractAttachment } from '../mime/extract-attachment.js';
import { transferDecoding } from '../mime/transfer-decoding.js';
import { fetchSummaries } from './summary.js';
import { withDeadline } from '../../util/deadline.js';
import type { AccountWatch, WatchOptions, WatchSink } from '../watch.js';
import { watchImapAccount } from './watch/account-watcher.js';
import { Semaphore } from '../../util/semaphore.js';
import type { Metrics } from '../../metrics/metrics.js';
import type { SessionSlots } from '../../coordination/session-slots.js';

export interface ImapBackendOptions {
  resolveAccount: MailAccountResolver;
  egress: EgressPolicy;
  maxSessionsPerAccount: number;
  sessionIdleTimeoutMs: number;
  acquireTimeoutMs: number;
  upstreamTimeoutMs: number;
  /** Bytes per partial FETCH of a download (raw message or attachment); default 1 MiB. */
  downloadChunkBytes?: number;
  /** A download whose client reads nothing for this long is ended. */
  downloadIdleTimeoutMs?: number;
  /** Watchers logging in and taking their first look at once, process-wide (EVENTS_WATCH_START_CONCURRENCY). */
  watchStartConcurrency?: number;
  log: Logger;
  metrics?: Metrics;
  /** Session slots across gateway processes (Redis), or this process's own count. */
  slots: SessionSlots;
  /** Whether the event source is running (so `events` is a capability). */
  events?: boolean;
  /** Listing pages validated against the mailbox state; absent: every listing is fetched. */
  listingCache?: ListingCache;
}

/** What every IMAP server offers through the gateway; server extensions add move, changes, events. */
export const IMAP_BASE_CAPABILITIES: readonly Capability[] = ['append', 'copy', 'flags', 'folders', 'search'];

/**
 * How a request wants its mailbox: selected, or selected and synchronised with the server (no
 * later than `syncedSince`, when given); or (`select: false`) only a session that has it selected
 * if one is free, left as it is.
 */
type Selection = { path: string; sync: boolean; select?: false; syncedSince?: number } | null;

export class ImapBackend implements MailBackend {
  private readonly pools = new Map<string, AccountPool>();
  /** Set by close(): requests whose pool closes then are not retried on a new one. */
  private closing = false;
  private readonly serverCapabilities = new Map<string, Capability[]>();
  private readonly unwatch = new Map<string, () => void>();
  /** Listing state checks by account and mailbox, one in flight per mailbox (see currentState). */
  private readonly stateChecks = new SharedStateChecks<string | null>();

  private readonly watchStarts: Semaphore;

  constructor(private readonly options: ImapBackendOptions) {
    this.watchStarts = new Semaphore(options.watchStartConcurrency ?? 16);
  }

  async verify(account: MailAccount): Promise<Capability[]> {
    const client = await this.connect(account);
    try {
      return this.noteCapabilities(account.id, client);
    } finally {
      await withDeadline(client.logout(), this.options.upstreamTimeoutMs, () => client.close()).catch(() =>
        client.close(),
      );
    }
  }

  capabilities(accountId: string): Capability[] | null {
    return this.serverCapabilities.get(accountId) ?? null;
  }

  capabilitiesOf(accountId: string): Capability[] {
    return this.capabilities(accountId) ?? [...IMAP_BASE_CAPABILITIES, ...(this.options.events ? (['events'] as const) : [])].sort();
  }

  poolStats(): Map<string, PoolStats> {
    return new Map([...this.pools].map(([id, pool]) => [id, pool.stats()]));
  }

  async listMailboxes(accountId: string, options: { counts: boolean }): Promise<MailboxInfo[]> {
    return this.run(accountId, 'list_mailboxes', null, (client) => listMailboxes(client, options.counts));
  }

  async listMessages(accountId: string, path: string, query: ListQuery): Promise<ListResult> {
    const listingCache = this.options.listingCache;
    if (listingCache === undefined) {
      return this.run(accountId, 'list_messages', { path, sync: true }, (client) => listPage(client, query));
    }
    const arrivedAt = performance.now();
    const key = listingCache.key(accountId, path, query);
    const generation = listingCache.generation(accountId);
    const cached = await listingCache.get(accountId, key);
    if (cached !== null && (await this.currentState(accountId, path)) === cached.state) return this.cachedResult(cached, query);
    // The state check (if any) was sent after the request arrived; on its session that is sync enough.
    const built = await this.run(accountId, 'list_messages', { path, sync: true, syncedSince: arrivedAt }, async (client): Promise<ListResult | { result: ListResult; cacheable: boolean }> => {
      const mailboxNow = selectedMailbox(client);
      // The mailbox may have come back to the cached state since (a flag set and cleared).
      if (cached !== null && cacheable(mailboxNow) && cached.state === mailboxState(mailboxNow)) {
        return this.cachedResult(cached, query);
      }
      if (!cacheable(mailboxNow)) {
        // Without CONDSTORE an unfiltered page is checked by its UIDs and flags (one cheap FETCH), when
        // there is something to check (a cached copy, an If-None-Match), and fetched whole if it changed.
        // A filtered page is never cached; listPage answers its If-None-Match after fetching it.
        const pageCacheable = query.filters === undefined;
        if (!pageCacheable || (cached === null && query.ifNoneMatch === undefined)) {
          this.options.metrics?.cache('listing', false);
          return { result: await listPage(client, query), cacheable: pageCacheable };
        }
        const now = await pageStateNow(client, query);
        if (now !== null && cached !== null && cached.state === now) return this.cachedResult(cached, query);
        if (now !== null && query.ifNoneMatch === now) return { notModified: true, state: now };
        this.options.metrics?.cache('listing', false);
        const { ifNoneMatch: _checked, ...unconditional } = query;
        return { result: await listPage(client, unconditional), cacheable: true };
      }
      this.options.metrics?.cache('listing', false);
      const result = await listPage(client, query);
      return { result, cacheable: true };
    });
    if (!('cacheable' in built)) return built;
    const { result } = built;
    if (!built.cacheable || !('messages' in result)) return result;
    // Encoded and stored once the session is back: nothing here is the mail server's doing.
    return listingCache.set(accountId, key, result, generation);
  }

  /**
   * The mailbox's state as the server reports it now (listingState), from a check sent after this
   * call, shared with every other listing of the mailbox that arrived before it was sent
   * (state-check.ts, decision 0008).
   */
  private currentState(accountId: string, path: string): Promise<string | null> {
    return this.stateChecks.check(`${accountId}\u0000${path}`, (sending) =>
      this.run(accountId, 'check_listing', { path, sync: false, select: false }, (client) => {
        sending();
        return listingState(client, path);
      }),
    );
  }

  async getSummary(
    accountId: string,
    mailbox: string,
    ref: MessageRef,
    options: { markSeen: boolean },
  ): Promise<MessageSummary> {
    const { uid } = this.imapRef(ref);
    return this.run(accountId, 'get_summary', { path: mailbox, sync: true }, async (client) => {
      const uidValidity = this.checkUidValidity(client, ref);
      if (options.markSeen) {
        // STORE on a UID that does not exist is a silent no-op; the FETCH below tells.
        await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
      }
      const [summary] = await fetchSummaries(client, String(uid), uidValidity, true);
      if (summary === undefined || summary.uid !== uid) throw messageNotFound();
      return summary;
    });
  }

  /**
   * A download holds a session only while one of its chunks is being fetched, never while its
   * client is slow to read (download(), below). So any number of slow readers of an account are
   * served in turn, and a reader that reads nothing for `downloadIdleTimeoutMs` is ended.
   */
  async openRaw(accountId: string, mailbox: string, ref: MessageRef, rangeFor?: RangeSelector): Promise<RawMessage> {
    const { uid } = this.imapRef(ref);
    const value = await this.run(accountId, 'open_raw', { path: mailbox, sync: true }, async (client) => {
      this.checkUidValidity(client, ref);
      const msg = await client.fetchOne(String(uid), { uid: true, size: true }, { uid: true });
      if (!msg || msg.uid !== uid || msg.size === undefined) throw messageNotFound();
      return { size: msg.size, range: rangeFor?.(msg.size) ?? { start: 0, end: msg.size } };
    });
    const stream = this.download(accountId, mailbox, ref, 'download_chunk', async (client, start, length) => {
      const fetched = await client.fetchOne(String(uid), { source: { start, maxLength: length } }, { uid: true });
      return fetched ? fetched.source : undefined;
    }, { start: value.range.start, end: value.range.end, until: 'end' });
    return { size: value.size, range: value.range, stream };
  }

  /**
   * One body part, decoded: where it is, its transfer encoding and charset come from BODYSTRUCTURE;
   * its bytes, like a raw download's, from partial FETCHes of its section, each on a session leased
   * for that chunk alone; base64 and quoted-printable are undone here, across chunk boundaries
   * (mime/transfer-decoding.ts). An encoding the gateway does not know goes out as it is, and says so.
   *
   * With `parsed` (what the message view says of the attachment), the server's part is used only when
   * it is that attachment (body-part.ts `servesAsParsed`); otherwise the bytes come from the gateway's
   * own parse of the streamed message, so an id never serves another part's bytes (decision 0018).
   */
  async openPart(accountId: string, mailbox: string, ref: MessageRef, partId: string, parsed?: ParsedPart): Promise<PartStream> {
    const { uid } = this.imapRef(ref);
    const part = await this.run(accountId, 'open_part', { path: mailbox, sync: true }, async (client) => {
      this.checkUidValidity(client, ref);
      const msg = await client.fetchOne(String(uid), { uid: true, bodyStructure: true }, { uid: true });
      if (!msg || msg.uid !== uid) throw messageNotFound();
      return findBodyPart(msg.bodyStructure, partId);
    });
    if (part === null && parsed === undefined) throw new GatewayError('ATTACHMENT_NOT_FOUND', `No attachment ${partId} in this message`);
    const use = part === null ? 'parse' : parsed === undefined ? 'part' : servesAsParsed(part, parsed);
    if (use === 'parse') {
      this.options.metrics?.attachmentsFromParse.inc();
      return this.partFromParse(accountId, mailbox, ref, partId, part?.charset);
    }
    const found = part!;
    const decoding = transferDecoding(found.encoding);
    if (decoding.kind === 'unknown') {
      this.options.log.warn({ account: accountId, part: partId, encoding: decoding.encoding }, 'an attachment in a transfer encoding the gateway does not know is sent as it is');
    }
    const stream = this.download(accountId, mailbox, ref, 'download_part_chunk', async (client, start, length) => {
      const fetched = await client.fetchOne(String(uid), { uid: true, bodyParts: [{ key: found.section, start, maxLength: length }] }, { uid: true });
      if (!fetched || fetched.uid !== uid) return undefined;
      return fetched.bodyParts?.get(found.section) ?? Buffer.alloc(0);
    }, {
      start: 0,
      // Only a bound: the part ends where the server's bytes do (chunk-stream.ts).
      end: found.sizeBytes * 2 + this.chunkBytes,
      until: 'short-chunk',
      ...(decoding.kind === 'decoded' ? { decoder: decoding.decoder } : {}),
    });
    return {
      stream: typeof use === 'object' ? takeFirstBytes(stream, use.trimTo) : stream,
      size: typeof use === 'object' ? use.trimTo : null,
      charset: found.charset,
      ...(decoding.kind === 'unknown' ? { transferEncoding: decoding.encoding } : {}),
    };
  }

  /** The attachment's bytes from the gateway's own parse of the message, streamed in chunks like a raw download. */
  private async partFromParse(accountId: string, mailbox: string, ref: MessageRef, partId: string, charset: string | undefined): Promise<PartStream> {
    const raw = await this.openRaw(accountId, mailbox, ref);
    const extracted = await extractAttachment(raw.stream, partId).catch((err: unknown) => {
      raw.stream.destroy();
      throw err;
    });
    if (extracted === null) {
      raw.stream.destroy();
      throw new GatewayError('ATTACHMENT_NOT_FOUND', `No attachment ${partId} in this message`);
    }
    // The rest of the message is not needed once the part is out: no more chunks are fetched.
    extracted.content.once('close', () => raw.stream.destroy());
    return { stream: extracted.content, size: null, charset };
  }

  private get chunkBytes(): number {
    return this.options.downloadChunkBytes ?? 1024 * 1024;
  }

  /**
   * A download in chunks (chunk-stream.ts): each chunk's FETCH leases a session for itself (a
   * `stream` lease, so a listing always finds one free) and gives it back as soon as the chunk is
   * in. The next chunk may come from another session, so the mailbox's UIDVALIDITY is checked again
   * for every chunk: an id never reads another message's bytes.
   */
  private download(
    accountId: string,
    mailbox: string,
    ref: MessageRef,
    operation: string,
    fetch: (client: ImapFlow, start: number, length: number) => Promise<Buffer | undefined>,
    range: Pick<ChunkStreamOptions, 'start' | 'end' | 'until' | 'decoder'>,
  ): Readable {
    return createChunkStream({
      ...range,
      fetchChunk: async (start, length) => {
        const { lease, value: chunk } = await this.leaseFor(accountId, operation, { path: mailbox, sync: false }, 'stream', async (client) => {
          this.checkUidValidity(client, ref);
          return fetch(client, start, length);
        });
        lease.release();
        return chunk;
      },
      chunkBytes: this.chunkBytes,
      idleTimeoutMs: this.options.downloadIdleTimeoutMs ?? 60_000,
    });
  }

  /**
   * Watches the account (watch/account-watcher.ts) on a session of its pool, leased as a `stream`
   * so it counts toward the account's cap (in every process, through the session slots) and a
   * listing always finds another session free.
   */
  watch(accountId: string, sink: WatchSink, options: WatchOptions): AccountWatch {
    return watchImapAccount({
      accountId,
      leaseSession: () => this.leaseWatchSession(accountId),
      onSession: (work) => this.run(accountId, 'watch_list', null, work),
      onMailbox: (path, work) => this.run(accountId, 'watch_sync', { path, sync: true }, work),
      sink,
      options,
      startGate: this.watchStarts,
      log: this.options.log.child({ account: accountId, component: 'watcher' }),
    });
  }

  private async leaseWatchSession(accountId: string): Promise<Lease> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.pool(accountId).acquire(null, 'stream');
      } catch (err) {
        if (err instanceof PoolClosed && !this.closing && attempt <= 3) continue;
        throw err;
      }
    }
  }

  async changesSince(accountId: string, mailbox: string, since: string, limit: number): Promise<MailboxChangesResult> {
    return this.run(accountId, 'changes', { path: mailbox, sync: true }, (client) => {
      // Whether the server can answer at all comes before whether the token is one we issued.
      if (!client.enabled.has('QRESYNC')) {
        throw lacksQresync();
      }
      return changesSince(client, decodeImapState(since), limit);
    });
  }

  async updateFlags(
    accountId: string,
    mailbox: string,
    ref: MessageRef,
    changes: FlagChanges,
    expected?: ExpectedStates,
  ): Promise<MessageSummary> {
    const { uid } = this.imapRef(ref);
    const plan = flagsToAddAndRemove(changes);
    // Under If-Match the sync happens inside the message's lock, right before the check.
    const selection = { path: mailbox, sync: expected === undefined };
    return this.run(accountId, 'update_flags', selection, async (client) => {
      const uidValidity = this.checkUidValidity(client, ref);
      if (expected !== undefined) {
        await storeFlagsIfCurrent(client, uid, plan, expected);
      } else {
        const before = await client.fetchOne(String(uid), { uid: true }, { uid: true });
        if (!before || before.uid !== uid) throw messageNotFound();
        await storeFlags(client, uid, plan);
      }
      const [summary] = await fetchSummaries(client, String(uid), uidValidity, true);
      if (summary === undefined || summary.uid !== uid) throw messageNotFound();
      return summary;
    }, { retry: expected === undefined });
  }

  async moveMessage(
    accountId: string,
    mailbox: string,
    ref: MessageRef,
    destination: string,
    expected?: ExpectedStates,
  ): Promise<MessageLocation> {
    return this.transfer(accountId, mailbox, ref, destination, 'move', expected);
  }

  async copyMessage(accountId: string, mailbox: string, ref: MessageRef, destination: string): Promise<MessageLocation> {
    return this.transfer(accountId, mailbox, ref, destination, 'copy');
  }

  async deleteMessage(accountId: string, mailbox: string, ref: MessageRef, expected?: ExpectedStates): Promise<void> {
    const { uid } = this.imapRef(ref);
    await this.run(accountId, 'delete_message', { path: mailbox, sync: false }, async (client) => {
      this.checkUidValidity(client, ref);
      await expungeMessage(client, uid, expected);
    }, { retry: false });
  }

  async appendMessage(accountId: string, path: string, content: Buffer, flags: string[]): Promise<MessageLocation> {
    // APPEND needs no selected mailbox; a session that has the destination selected is preferred
    // only because it is likely idle and warm.
    const added = await this.run(accountId, 'append', null, (client) => appendMessage(client, path, content, flags), { retry: false });
    return { id: encodeImapMessageId(added.uidValidity, added.uid), mailbox: path };
  }

  async createMailbox(accountId: string, path: string): Promise<MailboxInfo> {
    return this.run(accountId, 'create_mailbox', null, (client) => createMailbox(client, path), { retry: false });
  }

  async updateMailbox(accountId: string, from: string, changes: MailboxChanges): Promise<MailboxInfo> {
    const renamed = changes.path !== undefined && changes.path !== from;
    const info = await this.run(
      accountId,
      'update_mailbox',
      null,
      async (client) => {
        let result = renamed ? await renameMailbox(client, from, changes.path!) : undefined;
        if (changes.subscribed !== undefined) result = await setSubscribed(client, result?.path ?? from, changes.subscribed);
        return result ?? describeMailbox(client, from);
      },
      { retry: false },
    );
    if (renamed) this.pools.get(accountId)?.forgetMailbox(from);
    return info;
  }

  async deleteMailbox(accountId: string, path: string): Promise<void> {
    await this.run(accountId, 'delete_mailbox', null, (client) => deleteMailbox(client, path), { retry: false });
    this.pools.get(accountId)?.forgetMailbox(path);
  }

  private async transfer(
    accountId: string,
    mailbox: string,
    ref: MessageRef,
    target: string,
    mode: 'move' | 'copy',
    expected?: ExpectedStates,
  ): Promise<MessageLocation> {
    const { uid } = this.imapRef(ref);
    const moved = await this.run(
      accountId,
      mode === 'move' ? 'move_message' : 'copy_message',
      { path: mailbox, sync: false },
      async (client) => {
        this.checkUidValidity(client, ref);
        return transferMessage(client, uid, target, mode, expected);
      },
      { retry: false },
    );
    return { id: encodeImapMessageId(moved.uidValidity, moved.uid), mailbox: target };
  }

  private cachedResult(page: EncodedPage, query: ListQuery): ListResult {
    this.options.metrics?.cache('listing', true);
    return query.ifNoneMatch === page.state ? { notModified: true, state: page.state } : page;
  }

  parsedCacheKey(accountId: string, mailbox: string, ref: MessageRef): string {
    const { uidValidity, uid } = this.imapRef(ref);
    return keys.imapMessage(accountId, mailbox, uidValidity, uid);
  }

  async dropAccount(accountId: string): Promise<void> {
    const pool = this.pools.get(accountId);
    this.pools.delete(accountId);
    this.unwatch.get(accountId)?.();
    this.unwatch.delete(accountId);
    this.serverCapabilities.delete(accountId);
    await this.options.listingCache?.forgetAccount(accountId);
    await pool?.close();
  }

  async close(): Promise<void> {
    this.closing = true;
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  // --- sessions ---------------------------------------------------------------------------------

  private pool(accountId: string): AccountPool {
    let pool = this.pools.get(accountId);
    if (pool === undefined) {
      pool = new AccountPool({
        maxSessions: this.options.maxSessionsPerAccount,
        idleTimeoutMs: this.options.sessionIdleTimeoutMs,
        acquireTimeoutMs: this.options.acquireTimeoutMs,
        logoutTimeoutMs: Math.min(this.options.upstreamTimeoutMs, 5000),
        log: this.options.log.child({ account: accountId }),
        acquireSlot: () => this.options.slots.acquire(accountId, 'imap', this.options.maxSessionsPerAccount),
        connect: async () => {
          const account = await this.options.resolveAccount(accountId);
          const client = await this.connect(account);
          this.noteCapabilities(accountId, client);
          return client;
        },
      });
      this.pools.set(accountId, pool);
      const created = pool;
      this.unwatch.set(accountId, this.options.slots.watch(accountId, 'imap', () => created.releaseIdleSession()));
    }
    return pool;
  }

  private connect(account: MailAccount): Promise<ImapFlow> {
    return connectImap(account, {
      egress: this.options.egress,
      timeoutMs: this.options.upstreamTimeoutMs,
      socketTimeoutMs: this.options.sessionIdleTimeoutMs + 60_000,
      log: this.options.log.child({ account: account.id }),
    });
  }

  /** Runs one command sequence on a leased session, bounded in time; returns the session after. */
  private async run<T>(
    accountId: string,
    operation: string,
    selection: Selection,
    work: (client: ImapFlow) => Promise<T>,
    options: { retry?: boolean } = {},
  ): Promise<T> {
    const { lease, value } = await this.leaseFor(accountId, operation, selection, 'command', work, options);
    lease.release();
    return value;
  }

  /**
   * Leases a session, selects the mailbox and runs `work`; on success the caller owns the lease.
   *
   * A reused session may have been closed by the server while it sat idle (a restart, an admin
   * kick, an idle logout) without the gateway having read the goodbye yet. For work that is safe
   * to repeat (reads: `retry` defaults to true), a lost connection on a reused session is retried
   * once on a fresh one, as HTTP clients retry idempotent requests on a reused keep-alive socket.
   * Writes pass `retry: false`: a MOVE whose answer was lost may have happened.
   */
  private async leaseFor<T>(
    accountId: string,
    operation: string,
    selection: Selection,
    kind: LeaseKind,
    work: (client: ImapFlow) => Promise<T>,
    options: { retry?: boolean } = {},
  ): Promise<{ lease: Lease; value: T }> {
    const path = selection?.path ?? null;
    for (let attempt = 1; ; attempt++) {
      let lease: Lease;
      try {
        lease = await this.pool(accountId).acquire(path, kind, { anyIdle: selection?.select === false });
      } catch (err) {
        // The account's settings changed while this request waited: its sessions were closed, and
        // a new pool, with the new settings, serves it (unless the gateway itself is stopping).
        if (err instanceof PoolClosed && !this.closing && attempt <= 3) continue;
        const mapped = mapImapError(err, { mailbox: selection?.path });
        this.options.metrics?.upstreamErrors.inc({ protocol: 'imap', code: mapped.code });
        throw mapped;
      }
      const client = lease.client;
      const stopTimer = this.options.metrics?.upstreamDuration.startTimer({ protocol: 'imap', operation });
      try {
        const value = await withDeadline(
          (async () => {
            if (selection !== null && path !== null && selection.select !== false) {
              await selectMailbox(client, path, selection.sync, selection.syncedSince);
            }
            return work(client);
          })(),
          this.options.upstreamTimeoutMs,
          () => client.close(),
        );
        stopTimer?.();
        return { lease, value };
      } catch (err) {
        stopTimer?.();
        const usable = client.usable;
        if (usable) lease.release();
        else lease.evict();
        const mapped = mapImapError(err, { mailbox: selection?.path });
        const stale = !usable && lease.reused && mapped.code === 'UPSTREAM_ERROR';
        this.options.metrics?.upstreamErrors.inc({ protocol: 'imap', code: mapped.code });
        if (stale && attempt === 1 && options.retry !== false) {
          this.options.log.debug({ account: accountId }, 'a pooled imap session had been closed by the server; retrying on a new one');
          continue;
        }
        throw mapped;
      }
    }
  }

  private noteCapabilities(accountId: string, client: ImapFlow): Capability[] {
    const has = (name: string): boolean => client.capabilities.has(name);
    const caps: Capability[] = [...IMAP_BASE_CAPABILITIES];
    if (has('MOVE') || has('UIDPLUS')) caps.push('move');
    // Deletions since a state can only be told with QRESYNC's VANISHED (RFC 7162 §3.2.6).
    if (has('QRESYNC')) caps.push('changes');
    // Every IMAP server can be watched: IDLE (or NOOP polls without it) on INBOX, NOTIFY or LIST-STATUS polls elsewhere.
    if (this.options.events) caps.push('events');
    caps.sort();
    this.serverCapabilities.set(accountId, caps);
    return caps;
  }

  private imapRef(ref: MessageRef): { uidValidity: bigint; uid: number } {
    if (ref.kind !== 'imap') throw messageNotFound();
    return ref;
  }

  /** An id minted under another UIDVALIDITY names no message here (RFC 9051 §2.3.1.1). */
  private checkUidValidity(client: ImapFlow, ref: MessageRef): bigint {
    const current = selectedMailbox(client).uidValidity;
    if (ref.kind !== 'imap' || BigInt(current) !== ref.uidValidity) throw messageNotFound();
    return current;
  }
}
