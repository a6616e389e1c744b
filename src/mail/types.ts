/**
 * The shapes the mail layer hands up to the routes: protocol-neutral, already in the API's terms
 * (API.md, Mailboxes and Messages). Route schemas in src/http/schemas mirror these.
 */
import type { MessageFilters } from './filters.js';
import type { ParsedAttachment } from './mime/parse-message.js';

export interface Address {
  name: string;
  address: string;
}

export interface MailboxInfo {
  path: string;
  name: string;
  delimiter: string | null;
  parent: string | null;
  specialUse: string | null;
  /**
   * Where `specialUse` comes from: `attribute`, the server's LIST attribute (RFC 6154 SPECIAL-USE, or
   * XLIST); `name`, guessed by imapflow from the name of a mailbox the server gave no such attribute
   * (and `\Inbox`, which is INBOX by name, RFC 9051 §5.1); null without a special use.
   */
  specialUseSource: 'attribute' | 'name' | null;
  subscribed: boolean;
  flags: string[];
  counts?: MailboxCounts;
}

export interface MailboxCounts {
  messages: number;
  unseen: number;
  uidNext: number | null;
  uidValidity: string | null;
}

export interface MessageSummary {
  id: string;
  uid?: number;
  messageId: string | null;
  subject: string | null;
  from: Address[];
  to: Address[];
  cc: Address[];
  date: string | null;
  receivedAt: string | null;
  size: number;
  flags: string[];
  seen: boolean;
  flagged: boolean;
  hasAttachments: boolean | null;
  preview: string | null;
}

export interface MessagePage {
  messages: MessageSummary[];
  nextCursor: string | null;
  total: number;
  state: string;
}

export interface MessageDetail extends MessageSummary {
  headers: Array<{ key: string; value: string }>;
  text: string | null;
  html: string | null;
  inReplyTo: string | null;
  references: string[];
  attachments: Array<Omit<ParsedAttachment, 'partId'>>;
}

export interface ListQuery {
  limit: number;
  cursor: string | undefined;
  /** Search filters (IMAP only), combined with AND. */
  filters?: MessageFilters | undefined;
  /** The client's `If-None-Match` state: when it is still current, no page is fetched. */
  ifNoneMatch?: string | undefined;
}

/** A byte range of a message, inclusive `start`, exclusive `end` (already validated). */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * What an account can do through the gateway (API.md: `folders, flags, search, move, copy, append,
 * changes, events, send`). Only what works is listed: `send` joins when it is built.
 */
export const CAPABILITIES = ['folders', 'flags', 'search', 'move', 'copy', 'append', 'changes', 'events', 'send'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/**
 * A page already in its JSON form, as the listing cache keeps it: sent as these bytes, so a cache
 * hit costs no parse and no serialisation.
 */
export interface EncodedPage {
  state: string;
  json: Buffer;
}

/** A listing page, or "unchanged" when the client's `If-None-Match` state is still current. */
export type ListResult = MessagePage | EncodedPage | { notModified: true; state: string };

/** Where a message is after a move, copy or append. */
export interface MessageLocation {
  id: string;
  mailbox: string;
}

/** A flag change on one message (API.md, PATCH .../messages/{id}). */
/**
 * A write's `If-Match` (RFC 9110 §13.1.1), free of HTTP: `any` for `*` (any existing message), else
 * the strong entity tags sent, one of which must be the mailbox's current listing state. Weak tags
 * never match under the strong comparison If-Match uses, so they are left out (`states` is empty
 * when only weak tags were sent).
 */
export type StateCondition = { kind: 'any' } | { kind: 'states'; states: readonly string[] };

/** The part of StateCondition a backend checks: `*` needs no check beyond the message existing. */
export interface ExpectedStates {
  states: readonly string[];
}

export interface FlagChanges {
  seen?: boolean;
  flagged?: boolean;
  answered?: boolean;
  draft?: boolean;
  addFlags?: string[];
  removeFlags?: string[];
}

/**
 * What changed in a mailbox since a state the gateway handed out (API.md, Changes): ids of created
 * and destroyed messages, summaries of updated ones, and the state to ask from next time.
 */
export interface MailboxChangesResult {
  created: string[];
  updated: MessageSummary[];
  destroyed: string[];
  state: string;
  /** More changes than `limit` happened: asking again with `state` continues. */
  hasMore: boolean;
}

export interface MailboxChanges {
  /** New full path (rename). */
  path?: string;
  subscribed?: boolean;
}
