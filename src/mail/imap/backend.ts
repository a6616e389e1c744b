/**
 * The IMAP backend: MailBackend over per-account pools of imapflow sessions.
 */
import type { ImapFlow } from 'imapflow';
import type { Logger } from 'pino';
import { GatewayError } from '../../errors.js';
import { keys } from '../../cache/keys.js';
import type { EgressPolicy } from '../../net/egress.js';
import type { MailAccount, MailAccountResolver } from '../account.js';
import type { MailBackend, PartStream, RangeSelector, RawMessage } from '../backend.js';
import type { MessageRef } from '../message-id.js';
import type { Capability, ListQuery, ListResult, MailboxInfo, MessageSummary } from '../types.js';
import { connectImap } from './connect.js';
import { mapImapError } from './errors.js';
import { listPage, selectedMailbox } from './listing.js';
import { listMailboxes } from './mailboxes.js';
import { AccountPool, type Lease, type LeaseKind, type PoolStats } from './pool.js';
import { createRawStream } from './raw-stream.js';
import { SUMMARY_FETCH_QUERY, toSummary } from './summary.js';
import { withDeadline } from '../../util/deadline.js';

export interface ImapBackendOptions {
  resolveAccount: MailAccountResolver;
  egress: EgressPolicy;
  maxSessionsPerAccount: number;
  sessionIdleTimeoutMs: number;
  acquireTimeoutMs: number;
  upstreamTimeoutMs: number;
  /** Bytes per partial FETCH of a raw download. */
  downloadChunkBytes?: number;
  log: Logger;
}

/** How a request wants its mailbox: selected, or selected and synchronised with the server. */
type Selection = { path: string; sync: boolean } | null;

export class ImapBackend implements MailBackend {
  private readonly pools = new Map<string, AccountPool>();
  private readonly serverCapabilities = new Map<string, Capability[]>();

  constructor(private readonly options: ImapBackendOptions) {}

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

  poolStats(): Map<string, PoolStats> {
    return new Map([...this.pools].map(([id, pool]) => [id, pool.stats()]));
  }

  async listMailboxes(accountId: string, options: { counts: boolean }): Promise<MailboxInfo[]> {
    return this.run(accountId, null, (client) => listMailboxes(client, options.counts));
  }

  async listMessages(accountId: string, mailbox: string, query: ListQuery): Promise<ListResult> {
    return this.run(accountId, { path: mailbox, sync: true }, (client) => listPage(client, query));
  }

  async getSummary(
    accountId: string,
    mailbox: string,
    ref: MessageRef,
    options: { markSeen: boolean },
  ): Promise<MessageSummary> {
    const { uid } = this.imapRef(ref);
    return this.run(accountId, { path: mailbox, sync: false }, async (client) => {
      const uidValidity = this.checkUidValidity(client, ref);
      if (options.markSeen) {
        // STORE on a UID that does not exist is a silent no-op; the FETCH below tells.
        await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true });
      }
      const msg = await client.fetchOne(String(uid), SUMMARY_FETCH_QUERY, { uid: true });
      if (!msg || msg.uid !== uid) throw messageNotFound();
      return toSummary(msg, uidValidity);
    });
  }

  async openRaw(accountId: string, mailbox: string, ref: MessageRef, rangeFor?: RangeSelector): Promise<RawMessage> {
    const { uid } = this.imapRef(ref);
    const { lease, value } = await this.leaseFor(accountId, { path: mailbox, sync: false }, 'stream', async (client) => {
      this.checkUidValidity(client, ref);
      const msg = await client.fetchOne(String(uid), { uid: true, size: true }, { uid: true });
      if (!msg || msg.uid !== uid || msg.size === undefined) throw messageNotFound();
      return { size: msg.size, range: rangeFor?.(msg.size) ?? { start: 0, end: msg.size } };
    });
    const stream = createRawStream({
      client: lease.client,
      uid,
      start: value.range.start,
      end: value.range.end,
      chunkBytes: this.options.downloadChunkBytes ?? 1024 * 1024,
      timeoutMs: this.options.upstreamTimeoutMs,
      onSettled: (err) => (err !== null && !lease.client.usable ? lease.evict() : lease.release()),
    });
    return { size: value.size, range: value.range, stream };
  }

  async openPart(accountId: string, mailbox: string, ref: MessageRef, partId: string): Promise<PartStream> {
    const { uid } = this.imapRef(ref);
    const { lease, value: download } = await this.leaseFor(
      accountId,
      { path: mailbox, sync: false },
      'stream',
      async (client) => {
        this.checkUidValidity(client, ref);
        // decodeText: false streams the part's bytes with only the transfer encoding undone.
        const result = await client.download(String(uid), partId, { uid: true, decodeText: false, chunkSize: 256 * 1024 });
        if (!result.content) throw new GatewayError('ATTACHMENT_NOT_FOUND', `No attachment ${partId} in this message`);
        return result;
      },
    );
    let returned = false;
    const giveBack = (): void => {
      if (returned) return;
      returned = true;
      if (lease.client.usable) lease.release();
      else lease.evict();
    };
    download.content.once('close', giveBack);
    download.content.once('end', giveBack);
    download.content.once('error', giveBack);
    return { stream: download.content, size: null };
  }

  parsedCacheKey(accountId: string, mailbox: string, ref: MessageRef): string {
    const { uidValidity, uid } = this.imapRef(ref);
    return keys.imapMessage(accountId, mailbox, uidValidity, uid);
  }

  async dropAccount(accountId: string): Promise<void> {
    const pool = this.pools.get(accountId);
    this.pools.delete(accountId);
    this.serverCapabilities.delete(accountId);
    await pool?.close();
  }

  async close(): Promise<void> {
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
        connect: async () => {
          const account = await this.options.resolveAccount(accountId);
          const client = await this.connect(account);
          this.noteCapabilities(accountId, client);
          return client;
        },
      });
      this.pools.set(accountId, pool);
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
  private async run<T>(accountId: string, selection: Selection, work: (client: ImapFlow) => Promise<T>): Promise<T> {
    const { lease, value } = await this.leaseFor(accountId, selection, 'command', work);
    lease.release();
    return value;
  }

  /** Leases a session, selects the mailbox and runs `work`; on success the caller owns the lease. */
  private async leaseFor<T>(
    accountId: string,
    selection: Selection,
    kind: LeaseKind,
    work: (client: ImapFlow) => Promise<T>,
  ): Promise<{ lease: Lease; value: T }> {
    const path = selection === null ? null : normalizeMailboxPath(selection.path);
    const lease = await this.pool(accountId).acquire(path, kind);
    const client = lease.client;
    try {
      const value = await withDeadline(
        (async () => {
          if (selection !== null && path !== null) await select(client, path, selection.sync);
          return work(client);
        })(),
        this.options.upstreamTimeoutMs,
        () => client.close(),
      );
      return { lease, value };
    } catch (err) {
      if (client.usable) lease.release();
      else lease.evict();
      throw mapImapError(err, { mailbox: selection?.path });
    }
  }

  private noteCapabilities(accountId: string, client: ImapFlow): Capability[] {
    const has = (name: string): boolean => client.capabilities.has(name);
    const caps: Capability[] = ['folders', 'flags', 'search', 'copy', 'append'];
    if (has('MOVE') || has('UIDPLUS')) caps.push('move');
    if (has('CONDSTORE') || has('QRESYNC')) caps.push('changes');
    if (has('IDLE')) caps.push('events');
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

/** INBOX is case-insensitive (RFC 9051 §5.1); every other name is taken as given. */
export function normalizeMailboxPath(path: string): string {
  return path.toUpperCase() === 'INBOX' ? 'INBOX' : path;
}

/** Selects `path` unless it already is; `sync` also asks the server for changes (NOOP, RFC 9051 §6.1.2). */
async function select(client: ImapFlow, path: string, sync: boolean): Promise<void> {
  if (client.mailbox && client.mailbox.path === path) {
    if (sync) await client.noop();
    return;
  }
  await client.mailboxOpen(path);
}

function messageNotFound(): GatewayError {
  return new GatewayError('MESSAGE_NOT_FOUND', 'No such message in this mailbox');
}
