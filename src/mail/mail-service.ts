/**
 * The mail use cases behind the message and mailbox routes: picks the account's backend, decides
 * cache versus server, and shapes results. No HTTP types here.
 *
 * A message's parsed form (headers, text, html, attachment list) never changes for a given
 * UIDVALIDITY and UID (or POP3 UIDL), so it is cached without revalidation; flags are always read
 * from the server.
 *
 * Every mailbox path a request names (the mailbox, a move or copy destination) is normalised here,
 * once, before any backend, cache key or id sees it (mailbox-path.ts): `inbox` and `INBOX` are one
 * mailbox to every layer below.
 */
import type { Readable } from 'node:stream';
import type { AccountService } from '../accounts/account-service.js';
import type { AccountRecord, Protocol } from '../accounts/types.js';
import { getJson, setJson, type Cache } from '../cache/cache.js';
import { GatewayError } from '../errors.js';
import type { Metrics } from '../metrics/metrics.js';
import type { MailBackend, RangeSelector, RawMessage } from './backend.js';
import type { AccountWatch, WatchOptions, WatchSink } from './watch.js';
import { normalizeMailboxPath as normalize } from './mailbox-path.js';
import { notSupported, protocolNotServed } from './mail-errors.js';
import { decodeMessageId, type MessageRef } from './message-id.js';
import { parseMessage, type ParsedMessage } from './mime/parse-message.js';
import { safeTransferEncoding, servedContentType } from './mime/attachment-info.js';
import type {
  ExpectedStates,
  FlagChanges,
  ListQuery,
  ListResult,
  MailboxChanges,
  MailboxChangesResult,
  MailboxInfo,
  MessageDetail,
  MessageLocation,
  MessageSummary,
  StateCondition,
} from './types.js';

export interface MailServiceOptions {
  accounts: AccountService;
  backends: Partial<Record<Protocol, MailBackend>>;
  cache: Cache;
  messageCacheTtlSeconds: number;
  metrics?: Metrics;
}

export interface AttachmentContent {
  contentType: string;
  filename: string | null;
  disposition: 'attachment' | 'inline';
  stream: Readable;
  /**
   * The transfer encoding the bytes are still in, when the gateway could not undo it (an encoding
   * it does not know), as an RFC 2045 token; absent when they are decoded (or it is no token).
   */
  transferEncoding?: string;
}

export class MailService {
  /** The connection settings this process's sessions of each account logged in with, as last seen. */
  private readonly connections = new Map<string, string>();

  constructor(private readonly options: MailServiceOptions) {}

  /**
   * Sessions opened with settings the record no longer has are logged out before the record is
   * used. The process that changed the account tells the others at once (account-changes.ts); this
   * check covers a message that was lost, within the time a record is used before it is read again.
   */
  private async noticeConnectionChange(record: AccountRecord): Promise<void> {
    const fingerprint = connectionFingerprint(record);
    const seen = this.connections.get(record.id);
    if (seen === fingerprint) return;
    this.connections.set(record.id, fingerprint);
    if (seen === undefined) return;
    await Promise.all(Object.values(this.options.backends).map((backend) => backend?.dropAccount(record.id)));
  }

  async listMailboxes(accountId: string, counts: boolean): Promise<MailboxInfo[]> {
    const backend = await this.backendFor(accountId);
    return backend.listMailboxes(accountId, { counts });
  }

  async listMessages(accountId: string, mailbox: string, query: ListQuery): Promise<ListResult> {
    const backend = await this.backendFor(accountId);
    if (query.filters !== undefined && !backend.capabilitiesOf(accountId).includes('search')) {
      throw unavailable('Filtering a listing (search)');
    }
    return backend.listMessages(accountId, normalize(mailbox), query);
  }

  async changesSince(accountId: string, mailbox: string, since: string, limit: number): Promise<MailboxChangesResult> {
    const backend = await this.backendFor(accountId);
    if (!backend.changesSince) throw unavailable('Delta sync (/changes)');
    return backend.changesSince(accountId, normalize(mailbox), since, limit);
  }

  /** `condition`: the write's If-Match, if any (decision 0010), as for the two writes below. */
  async updateFlags(accountId: string, mailbox: string, id: string, changes: FlagChanges, condition?: StateCondition): Promise<MessageSummary> {
    const backend = await this.backendFor(accountId);
    if (!backend.updateFlags) throw unavailable('Flags');
    return backend.updateFlags(accountId, normalize(mailbox), decodeMessageId(id), changes, expectedStates(condition));
  }

  async moveMessage(accountId: string, mailbox: string, id: string, destination: string, condition?: StateCondition): Promise<MessageLocation> {
    const backend = await this.backendFor(accountId);
    if (!backend.moveMessage) throw unavailable('Moving messages');
    return backend.moveMessage(accountId, normalize(mailbox), decodeMessageId(id), normalize(destination), expectedStates(condition));
  }

  async copyMessage(accountId: string, mailbox: string, id: string, destination: string): Promise<MessageLocation> {
    const backend = await this.backendFor(accountId);
    if (!backend.copyMessage) throw unavailable('Copying messages');
    return backend.copyMessage(accountId, normalize(mailbox), decodeMessageId(id), normalize(destination));
  }

  async deleteMessage(accountId: string, mailbox: string, id: string, condition?: StateCondition): Promise<void> {
    const backend = await this.backendFor(accountId);
    await backend.deleteMessage(accountId, normalize(mailbox), decodeMessageId(id), expectedStates(condition));
  }

  async appendMessage(accountId: string, mailbox: string, content: Buffer, flags: string[]): Promise<MessageLocation> {
    const backend = await this.backendFor(accountId);
    if (!backend.appendMessage) throw unavailable('Adding messages (APPEND)');
    return backend.appendMessage(accountId, normalize(mailbox), content, flags);
  }

  async createMailbox(accountId: string, path: string): Promise<MailboxInfo> {
    const backend = await this.backendFor(accountId);
    if (!backend.createMailbox) throw unavailable('Mailbox management');
    return backend.createMailbox(accountId, normalize(path));
  }

  async updateMailbox(accountId: string, path: string, changes: MailboxChanges): Promise<MailboxInfo> {
    const backend = await this.backendFor(accountId);
    if (!backend.updateMailbox) throw unavailable('Mailbox management');
    // The new name of a rename stays as given: renaming to any spelling of INBOX is refused as
    // MAILBOX_EXISTS by the backend, which a normalised name equal to `path` would turn into a no-op.
    return backend.updateMailbox(accountId, normalize(path), changes);
  }

  async deleteMailbox(accountId: string, path: string): Promise<void> {
    const backend = await this.backendFor(accountId);
    if (!backend.deleteMailbox) throw unavailable('Mailbox management');
    await backend.deleteMailbox(accountId, normalize(path));
  }

  async getMessage(accountId: string, mailboxPath: string, id: string, markSeen: boolean): Promise<MessageDetail> {
    const backend = await this.backendFor(accountId);
    const mailbox = normalize(mailboxPath);
    const ref = decodeMessageId(id);
    const summary = await backend.getSummary(accountId, mailbox, ref, { markSeen });
    const parsed = await this.parsed(backend, accountId, mailbox, ref);
    return {
      ...summary,
      // The message's own header parse, not the server's ENVELOPE: decoded from the header bytes
      // (8-bit headers, charsets the server does not know) and never a server's placeholder address.
      messageId: parsed.messageId,
      subject: parsed.subject,
      from: parsed.from,
      to: parsed.to,
      cc: parsed.cc,
      date: parsed.date ?? summary.date,
      hasAttachments: parsed.hasAttachments,
      preview: parsed.preview,
      headers: parsed.headers,
      text: parsed.text,
      html: parsed.html,
      inReplyTo: parsed.inReplyTo,
      references: parsed.references,
      attachments: parsed.attachments.map(({ partId: _partId, ...attachment }) => attachment),
    };
  }

  async openRaw(accountId: string, mailbox: string, id: string, rangeFor?: RangeSelector): Promise<RawMessage> {
    const backend = await this.backendFor(accountId);
    return backend.openRaw(accountId, normalize(mailbox), decodeMessageId(id), rangeFor);
  }

  async openAttachment(accountId: string, mailboxPath: string, id: string, attachmentId: string): Promise<AttachmentContent> {
    const backend = await this.backendFor(accountId);
    const mailbox = normalize(mailboxPath);
    const ref = decodeMessageId(id);
    const parsed = await this.parsed(backend, accountId, mailbox, ref);
    const attachment = parsed.attachments.find((a) => a.id === attachmentId);
    if (attachment === undefined) {
      throw new GatewayError('ATTACHMENT_NOT_FOUND', `No attachment ${attachmentId} in this message`);
    }
    const part = await backend.openPart(accountId, mailbox, ref, attachment.partId, attachment);
    const stillEncoded = safeTransferEncoding(part.transferEncoding);
    return {
      // The part's charset comes from the sender, unchecked by the server: the shared builder keeps only a token.
      contentType: servedContentType(attachment.contentType, part.charset),
      filename: attachment.filename,
      disposition: attachment.disposition,
      stream: part.stream,
      ...(stillEncoded !== null ? { transferEncoding: stillEncoded } : {}),
    };
  }

  /** The parsed message from the cache, or fetched, parsed and cached. */
  private async parsed(backend: MailBackend, accountId: string, mailbox: string, ref: MessageRef): Promise<ParsedMessage> {
    const key = backend.parsedCacheKey(accountId, mailbox, ref);
    const cached = await getJson<ParsedMessage>(this.options.cache, key);
    this.options.metrics?.cache('message', cached !== null);
    if (cached !== null) return cached;
    const raw = await backend.openRaw(accountId, mailbox, ref);
    let parsed: ParsedMessage;
    try {
      parsed = await parseMessage(raw.stream);
    } finally {
      // Returns the session even when parsing stopped early.
      raw.stream.destroy();
    }
    await setJson(this.options.cache, key, parsed, this.options.messageCacheTtlSeconds);
    return parsed;
  }

  /** Starts the account's protocol watcher (API.md, Events); ACCOUNT_NOT_FOUND when it is gone. */
  async watch(accountId: string, sink: WatchSink, options: WatchOptions): Promise<AccountWatch> {
    const backend = await this.backendFor(accountId);
    if (backend.watch === undefined) throw notSupported('This protocol cannot be watched');
    return backend.watch(accountId, sink, options);
  }

  private async backendFor(accountId: string): Promise<MailBackend> {
    const account = await this.options.accounts.get(accountId);
    await this.noticeConnectionChange(account);
    const backend = this.options.backends[account.protocol];
    if (backend === undefined) {
      throw protocolNotServed(account.protocol);
    }
    return backend;
  }
}

/**
 * The fields a session's login depends on: when one changes, sessions of the old ones must go. An
 * OAuth2 grant counts by its id, not its sealed secrets: a rotated refresh token is the same grant,
 * and its sessions stay.
 */
function connectionFingerprint(record: AccountRecord): string {
  const secret = record.authMethod === 'oauth2' && record.oauth2?.grantId !== undefined ? record.oauth2.grantId : record.sealedSecret;
  return JSON.stringify([record.protocol, record.host, record.port, record.security, record.username, record.authMethod, secret, record.tlsVerify]);
}

/**
 * What a backend must check. `*` matches any current representation (RFC 9110 §13.1.1), and a write
 * to a message that does not exist is 404 before any precondition (§13.2.1): so `*` asks for no
 * more than the write itself checks.
 */
function expectedStates(condition: StateCondition | undefined): ExpectedStates | undefined {
  if (condition === undefined || condition.kind === 'any') return undefined;
  return { states: condition.states };
}

/** A feature the account's backend does not implement at all (an optional MailBackend method). */
function unavailable(what: string): GatewayError {
  return notSupported(`${what} is not available on this account's protocol`);
}
