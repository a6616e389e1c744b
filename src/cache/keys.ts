/**
 * Every Redis key the gateway reads or writes is built here, under one versioned prefix, so that a
 * change of layout is one bump of `KEY_VERSION` and an operator can see at a glance what is stored.
 *
 * Account, token and webhook records never expire; everything else does (docs/operations.md, Redis sizing), which is what lets
 * Redis run with `maxmemory-policy volatile-lru` and evict only cache.
 */
export const KEY_VERSION = 'v1';
export const KEY_PREFIX = `mailgw:${KEY_VERSION}:`;

/** Hash tag so that one account's keys land in one Redis Cluster slot (multi-key ops stay legal). */
function accountTag(accountId: string): string {
  return `{${accountId}}`;
}

export const keys = {
  /** Hash of every account record, field = account id (no TTL). */
  accounts: (): string => `${KEY_PREFIX}accounts`,

  /** Hash of every access token, field = SHA-256 of the token, value = its record (no TTL). */
  tokens: (): string => `${KEY_PREFIX}tokens`,

  /**
   * Hash of every webhook record, field = webhook id, value = its record (JSON, secret sealed; no TTL).
   * Tagged `{webhooks}` so that it and its version counter share one Cluster slot: every write
   * changes both in one script or MULTI.
   */
  webhooks: (): string => `${KEY_PREFIX}{webhooks}`,

  /**
   * Counter INCR'd by every write to the webhooks hash (no TTL): a process that keeps the webhooks in
   * memory (the delivery dispatcher) reads it on an interval and re-reads the hash when it moved.
   */
  webhooksVersion: (): string => `${KEY_PREFIX}{webhooks}:version`,

  /**
   * One webhook's latest delivery records, newest first (a list, trimmed to a bound on every push;
   * TTL'd, refreshed on every push, so a forgotten webhook's records go away). Tagged by the webhook
   * id: the push, the trim and the TTL go in one MULTI on this one key.
   */
  webhookDeliveries: (webhookId: string): string => `${KEY_PREFIX}webhook:{${webhookId}}:deliveries`,

  /** Prefix of the rate-limit counters (one key per caller and window, TTL'd by the limiter). */
  rateLimitPrefix: (): string => `${KEY_PREFIX}ratelimit:`,

  /** Pub/sub channel: an account was changed or deleted through some process. */
  accountChanges: (): string => `${KEY_PREFIX}accounts:changed`,

  /** A parsed message (immutable: bound to UIDVALIDITY and UID). */
  imapMessage: (accountId: string, mailboxPath: string, uidValidity: bigint | number, uid: number): string =>
    `${KEY_PREFIX}acct:${accountTag(accountId)}:msg:${encodeSegment(mailboxPath)}:${uidValidity}:${uid}`,

  /** A listing page, stored with the mailbox state it was built from. */
  imapListing: (accountId: string, mailboxPath: string, queryHash: string): string =>
    `${KEY_PREFIX}acct:${accountTag(accountId)}:list:${encodeSegment(mailboxPath)}:${queryHash}`,

  /** POP3 headers of one message, by UIDL (immutable). */
  pop3Headers: (accountId: string, uidl: string): string =>
    `${KEY_PREFIX}acct:${accountTag(accountId)}:pop3:${encodeSegment(uidl)}`,

  /** A POP3 message's parsed form, by UIDL (immutable). */
  pop3Message: (accountId: string, uidl: string): string =>
    `${KEY_PREFIX}acct:${accountTag(accountId)}:pop3msg:${encodeSegment(uidl)}`,

  /** Session slots of one account's mail server, across gateway processes (sorted set, TTL'd). */
  sessionSlots: (accountId: string, protocol: 'imap' | 'pop3'): string =>
    `${KEY_PREFIX}slots:${accountTag(accountId)}:${protocol}`,

  /**
   * The flag a process raises while it waits for one of those slots (holders then free an idle
   * session). It carries the slot set's hash tag: the Lua scripts touch both keys, and in Redis
   * Cluster a script's keys must share one slot.
   */
  sessionSlotsWanted: (accountId: string, protocol: 'imap' | 'pop3'): string =>
    `${KEY_PREFIX}slots:${accountTag(accountId)}:${protocol}:wanted`,

  /** Pub/sub channel: a process waits for a session slot of the set named in the message. */
  sessionSlotsWantedChannel: (): string => `${KEY_PREFIX}slots:wanted`,

  /**
   * The account's event log: one Redis stream, entries `<ms>-<seq>` with one field `e` (the event's
   * JSON). Outside `acct:` so that a cache purge of the account never touches it. TTL'd (twice the
   * retention, refreshed on every append) so a dead account's stream goes away.
   */
  events: (accountId: string): string => `${KEY_PREFIX}events:${accountTag(accountId)}`,

  /**
   * An OAuth2 grant's current access token (sealed) and expiry, the refusal its last renewal got, and
   * a rotated refresh token (src/accounts/oauth2/). Keyed by the grant's id (a keyed fingerprint of its
   * settings, not the account): a grant given anew starts afresh, and the one it replaces keeps its
   * state until the replacement is saved. TTL'd to the token's expiry or the refusal's memory.
   */
  oauth2Token: (grantId: string): string => `${KEY_PREFIX}oauth2:{${grantId}}:token`,

  /** The accounts that log in with a grant (a set), so that each of their records gets a rotated refresh token. */
  oauth2Holders: (grantId: string): string => `${KEY_PREFIX}oauth2:{${grantId}}:holders`,

  /** The lease of the one renewal of a grant running across processes (`SET NX PX`); same slot as its token. */
  oauth2Renewal: (grantId: string): string => `${KEY_PREFIX}oauth2:{${grantId}}:renewal`,

  /**
   * Hash beside the stream: `last` (the newest id ever issued) and `trimmed` (the newest id ever
   * removed by retention or lost with the stream), which tell a resume point that missed events from
   * one that did not. TTL'd longer than the stream.
   */
  eventsMeta: (accountId: string): string => `${KEY_PREFIX}events:${accountTag(accountId)}:meta`,

  /** Hash of the watcher's mailbox states, field = mailbox path, value = JSON (TTL'd, refreshed on writes). */
  watchStates: (accountId: string): string => `${KEY_PREFIX}events:${accountTag(accountId)}:states`,

  /**
   * Hash of one mailbox's known messages, field = UID or UIDL, value = JSON flags, plus the field ""
   * that marks the hash as present (an eviction is then told from an empty mailbox). TTL'd like the states.
   */
  watchMessages: (accountId: string, mailboxPath: string): string =>
    `${KEY_PREFIX}events:${accountTag(accountId)}:msgs:${encodeSegment(mailboxPath)}`,

  /**
   * A large first look at a mailbox being written in parts before one append renames it into place
   * (so no single script blocks Redis for long); `token` is unique per append. TTL'd (minutes).
   */
  watchMessagesStaging: (accountId: string, mailboxPath: string, token: string): string =>
    `${KEY_PREFIX}events:${accountTag(accountId)}:msgs:${encodeSegment(mailboxPath)}:staging:${token}`,

  /** Pub/sub channel: events were appended to the account named in the message (a hint to readers). */
  eventsAppended: (): string => `${KEY_PREFIX}events:appended`,

  /** Pattern matching every cached key of one account, for purges. */
  accountCachePattern: (accountId: string): string => `${KEY_PREFIX}acct:${accountTag(accountId)}:*`,

  /** Prefix of every cached key of one account (in-memory cache purges by prefix). */
  accountCachePrefix: (accountId: string): string => `${KEY_PREFIX}acct:${accountTag(accountId)}:`,

  /**
   * Hash beside the account's stream, one pair of fields per webhook lane (src/webhooks/redis-lanes.ts):
   * `<webhook id>` = the newest event id settled, `<webhook id>:retry` = the head's retry state JSON.
   * In the stream's slot so a settle acknowledges and records in one MULTI. TTL'd like the watch state.
   */
  webhookLanes: (accountId: string): string => `${KEY_PREFIX}events:${accountTag(accountId)}:webhook-lanes`,

  /** Which process delivers the account's events to webhooks (value: its owner id; TTL'd, renewed by it). */
  deliveryLease: (accountId: string): string => `${KEY_PREFIX}webhooks:${accountTag(accountId)}:owner`,

  /**
   * The outbox (src/outbox/redis-outbox.ts). Every outbox key carries the one tag `{outbox}`: queueing
   * writes the entry, its bytes, the account's index, the idempotency key and the job in one script,
   * which Redis Cluster allows only within one slot (decision 0016).
   *
   * The job stream: one entry `q=<queueId>` per queued message, read by the consumer group `senders`
   * (every gateway process is a consumer); a job is acknowledged and deleted once its entry is final.
   */
  outboxJobs: (): string => `${KEY_PREFIX}outbox:{outbox}:jobs`,

  /** One outbox entry's record (JSON; no TTL while it is queued, TTL'd once final). */
  outboxEntry: (queueId: string): string => `${KEY_PREFIX}outbox:{outbox}:entry:${encodeSegment(queueId)}`,

  /** One outbox entry's message bytes, deleted once the entry is final and its Sent copy dealt with. */
  outboxRaw: (queueId: string): string => `${KEY_PREFIX}outbox:{outbox}:raw:${encodeSegment(queueId)}`,

  /** Sorted set of an account's outbox entries by creation time (ms); members whose entry expired are dropped on read. */
  outboxAccount: (accountId: string): string => `${KEY_PREFIX}outbox:{outbox}:account:${encodeSegment(accountId)}`,

  /** An Idempotency-Key seen on an account: the first request's receipt (TTL 24 h). */
  outboxIdempotency: (keyHash: string): string => `${KEY_PREFIX}outbox:{outbox}:idempotency:${keyHash}`,

  /** Which process watches the account (value: that process's owner id; TTL'd, renewed by it). */
  watchLease: (accountId: string): string => `${KEY_PREFIX}watch:${accountTag(accountId)}:owner`,

  /** Raised (TTL'd) by every process that has a subscriber for the account: keep it watched. */
  watchWanted: (accountId: string): string => `${KEY_PREFIX}watch:${accountTag(accountId)}:wanted`,
};

/** Mailbox paths and UIDLs may hold ':' or '*'; keep key segments unambiguous. */
function encodeSegment(value: string): string {
  return encodeURIComponent(value).replace(/\*/g, '%2A');
}
