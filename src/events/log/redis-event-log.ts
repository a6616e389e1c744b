/**
 * The event log in Redis (several gateway processes; single Redis or Redis Cluster).
 *
 * Layout (all built in src/cache/keys.ts, all with the account's hash tag, so one slot per account):
 * - `events:{acct}`: a stream, one entry per event, field `e` = the event's JSON (event-shape.ts), id
 *   `<ms>-<seq>` issued by Redis; trimmed by age on every append; TTL retention + max(retention, 1 h),
 *   refreshed on every append, so the stream of an account nobody watches any more goes away.
 * - `events:{acct}:meta`: hash `last` / `trimmed` (the newest id issued / removed), which make a resume
 *   point's "lost" exact and keep ids increasing across a stream that expired; TTL stream's + state's.
 * - `events:{acct}:states`: hash mailbox path → MailboxWatchState JSON.
 * - `events:{acct}:msgs:<mailbox>`: hash UID/UIDL → flags JSON, plus the presence marker "".
 * - `events:{acct}:msgs:<mailbox>:staging:<uuid>`: a large replacing change (a first look at a big
 *   mailbox) written in parts, renamed over the messages hash by the append; TTL 10 min.
 *
 * The state keys expire too (the house rule: only account records live for ever, so Redis may run
 * `volatile-lru`), after `stateTtlMs` (30 days) without a write. Every write refreshes the keys it
 * touches, every `loadStates` (a watcher starting) refreshes all of the account's, and every quarter
 * of the TTL this process refreshes all of them for each account it wrote or loaded state for, so a
 * quiet mailbox of a watched account keeps its state. State lost anyway (an account unwatched for 30 days, or evicted under memory pressure) is
 * reported as absent, never as empty: a mailbox whose messages hash is gone is left out of
 * `loadStates`, and its watcher looks at it afresh (docs/operations.md, Redis sizing).
 *
 * Atomicity: one Lua script per append writes the events, trims, applies the state changes and
 * publishes the hint, so a reader sees the events and the state they explain together or neither.
 * Failure: any Redis failure is a GatewayError SERVICE_UNAVAILABLE (503), also for `append` (the
 * watcher retries). An append that timed out may still have been applied: a retry may then store
 * the same events twice (at least once, never lost).
 */
import { randomUUID } from 'node:crypto';
import { boundedStoreCall } from '../../accounts/redis-store.js';
import { keys } from '../../cache/keys.js';
import type { RedisClient } from '../../cache/redis-connection.js';
import { GatewayError } from '../../errors.js';
import type { EventLog, MailboxWatchState, MailEvent, NewEvent, ReadResult, WatchStateChange } from '../types.js';
import { AppendListeners } from './append-listeners.js';
import { ZERO_ID, compareEventIds, isValidEventId, maxEventId } from './event-id.js';
import { checkEvents, decodeEvent, encodeEvent } from './event-shape.js';
import { RedisChannel } from '../../cache/redis-channel.js';
import { APPEND_SCRIPT, LATEST_SCRIPT, READ_SCRIPT, appendArguments, type AppendScriptSettings } from './redis-scripts.js';
import { checkRead } from './read-args.js';
import { checkChanges, decodeFlags, decodeState } from './watch-state.js';

export interface RedisEventLogOptions {
  /** How long events are kept (`EVENTS_RETENTION_SECONDS` in ms), by Redis's clock. */
  retentionMs: number;
  /** How long the watch state outlives its last write (default 30 days); must outlast any gateway stop. */
  stateTtlMs?: number;
  /** Bound on one Redis operation before SERVICE_UNAVAILABLE (default 5,000). */
  operationTimeoutMs?: number;
  /** The clock of an event's `at` when the watcher gave none (ms since the epoch; default Date.now). */
  now?: () => number;
}

export const DEFAULT_STATE_TTL_MS = 30 * 24 * 3_600_000;
const DEFAULT_OPERATION_TIMEOUT_MS = 5_000;
/** The stream outlives the retention by this much at least, so an account quiet for a while keeps its `last`. */
const MIN_STREAM_GRACE_MS = 3_600_000;

/** How long an account's stream lives after its last append. */
function streamTtlMs(retentionMs: number): number {
  return retentionMs + Math.max(retentionMs, MIN_STREAM_GRACE_MS);
}
/** HSCAN page when loading a mailbox's messages: no single reply of a 100k-message hash blocks Redis (~5 ms each). */
const SCAN_COUNT = 5_000;
/**
 * A replacing change with more messages than this is staged (written in parts of STAGE_PAIRS, then
 * renamed into place): one script applying 100,000 messages held Redis for ~200 ms here, a part of
 * 2,000 takes ~4 ms.
 */
const STAGE_ABOVE_PAIRS = 2_000;
const STAGE_PAIRS = 2_000;
/** A staging hash left by an append that never finished goes away by itself. */
const STAGING_TTL_MS = 10 * 60_000;

export class RedisEventLog implements EventLog {
  private readonly settings: AppendScriptSettings;
  private readonly operationTimeoutMs: number;
  private readonly now: () => number;
  private readonly listeners = new AppendListeners();
  private readonly hints: RedisChannel;
  /** Accounts whose state this process wrote or loaded since it started: their TTLs are kept fresh. */
  private readonly stateAccounts = new Set<string>();
  private readonly refreshTimer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly redis: RedisClient,
    options: RedisEventLogOptions,
  ) {
    if (!(options.retentionMs >= 1)) throw new Error('retentionMs must be at least 1');
    const stateTtlMs = options.stateTtlMs ?? DEFAULT_STATE_TTL_MS;
    const streamTtl = streamTtlMs(options.retentionMs);
    this.settings = {
      retentionMs: Math.floor(options.retentionMs),
      streamTtlMs: streamTtl,
      // The meta outlives the stream, so a resume point older than a stream that expired is still told lost.
      metaTtlMs: streamTtl + stateTtlMs,
      stateTtlMs,
      channel: keys.eventsAppended(),
    };
    this.operationTimeoutMs = options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    this.now = options.now ?? Date.now;
    // Hints sent while the subscriber was reconnecting are lost: every reader here then reads again.
    this.hints = new RedisChannel(
      redis,
      this.settings.channel,
      (accountId) => this.listeners.hint(accountId),
      () => this.listeners.hintAll(),
    );
    // A write refreshes only the keys it touches: a quiet mailbox of an account watched here for
    // weeks would otherwise expire. setInterval takes at most 2^31 - 1 ms.
    this.refreshTimer = setInterval(() => void this.refreshAll(), Math.min(2 ** 31 - 1, Math.max(1_000, Math.floor(stateTtlMs / 4))));
    this.refreshTimer.unref();
  }

  async append(accountId: string, events: NewEvent[], changes: WatchStateChange[] = []): Promise<MailEvent[]> {
    if (this.closed) throw new Error('event log is closed');
    checkEvents(events);
    checkChanges(changes);
    if (events.length === 0 && changes.length === 0) return [];
    const nowMs = this.now();
    const texts = events.map((event) => encodeEvent(event, nowMs));
    // A large first look is written in parts beside the live hash, then renamed into place by the
    // append itself: still all or nothing, but no single script blocks Redis for long.
    const staged = new Map<number, number>();
    const stagingKeys: string[] = [];
    for (const [index, change] of changes.entries()) {
      if (change.state === null || change.replace !== true || (change.set?.length ?? 0) <= STAGE_ABOVE_PAIRS) continue;
      const key = keys.watchMessagesStaging(accountId, change.mailbox, randomUUID());
      stagingKeys.push(key);
      staged.set(index, 3 + changes.length + stagingKeys.length);
      await this.stage(key, change.set ?? []);
    }
    const scriptKeys = [
      keys.events(accountId),
      keys.eventsMeta(accountId),
      keys.watchStates(accountId),
      ...changes.map((change) => keys.watchMessages(accountId, change.mailbox)),
      ...stagingKeys,
    ];
    const args = appendArguments(this.settings, accountId, texts, changes, staged);
    // One array argument (ioredis flattens it): a change of many messages has more arguments than a
    // spread call may pass.
    let reply: unknown;
    try {
      reply = await this.call('write', () => this.redis.eval(APPEND_SCRIPT, scriptKeys.length, [...scriptKeys, ...args]));
    } catch (err) {
      if (stagingKeys.length > 0) this.redis.unlink(stagingKeys).catch(() => undefined); // else they expire
      throw err;
    }
    if (!isStringArray(reply) || reply.length !== texts.length) {
      throw new GatewayError('SERVICE_UNAVAILABLE', 'the event log answered an append with something else than ids');
    }
    const stored = reply.map((id, i) => decodeEvent(id, accountId, texts[i] ?? '')).filter((e): e is MailEvent => e !== null);
    if (stored.length > 0) this.listeners.hint(accountId);
    if (changes.length > 0) this.stateAccounts.add(accountId);
    return stored;
  }

  async readAfter(accountId: string, afterId: string, limit: number): Promise<ReadResult> {
    checkRead(afterId, limit);
    const reply = await this.call('read', () =>
      this.redis.eval(READ_SCRIPT, 2, keys.events(accountId), keys.eventsMeta(accountId), `(${afterId}`, String(limit)),
    );
    if (!Array.isArray(reply)) throw new GatewayError('SERVICE_UNAVAILABLE', 'the event log answered a read with something else');
    const [entries, trimmed, last, exists] = reply as [unknown, unknown, unknown, unknown];
    const events: MailEvent[] = [];
    for (const entry of Array.isArray(entries) ? entries : []) {
      const event = parseEntry(accountId, entry);
      if (event !== null) events.push(event);
    }
    // Lost: something newer than the resume point was removed by retention, or went with the stream.
    const lost =
      (isEventId(trimmed) && compareEventIds(afterId, trimmed) < 0) ||
      (Number(exists) === 0 && isEventId(last) && compareEventIds(afterId, last) < 0);
    return { events, lost };
  }

  async latestId(accountId: string): Promise<string> {
    const reply = await this.call('read', () => this.redis.eval(LATEST_SCRIPT, 2, keys.events(accountId), keys.eventsMeta(accountId)));
    const [newest, last] = Array.isArray(reply) ? (reply as unknown[]) : [];
    // `last` also covers a stream trimmed empty: "now" is after the last event ever issued, so a
    // reader starting from it is not told it lost the events that were trimmed before it came.
    let latest = ZERO_ID;
    if (isEventId(newest)) latest = maxEventId(latest, newest);
    if (isEventId(last)) latest = maxEventId(latest, last);
    return latest;
  }

  isValidId(id: string): boolean {
    return isValidEventId(id);
  }

  onAppend(accountId: string, listener: () => void): () => void {
    const remove = this.listeners.add(accountId, listener);
    if (!this.closed) void this.hints.start();
    return remove;
  }

  /**
   * Resolves once this process's subscriber for other processes' hints is subscribed (true), or
   * could not be within a short wait (false; it keeps trying). `onAppend` starts it.
   */
  listening(): Promise<boolean> {
    return this.closed ? Promise.resolve(false) : this.hints.start();
  }

  async loadStates(accountId: string): Promise<Map<string, MailboxWatchState>> {
    const statesKey = keys.watchStates(accountId);
    const stored = await this.call('read', () => this.redis.hgetall(statesKey));
    const candidates = new Map<string, MailboxWatchState>();
    for (const [mailbox, text] of Object.entries(stored)) {
      const state = decodeState(text);
      if (state !== null) candidates.set(mailbox, state);
    }
    // Refreshing every TTL of the account's state also tells which messages hashes are still there
    // (PEXPIRE answers 0 for a missing key): a state whose messages are gone is not answered.
    const present = await this.refreshStateTtl(accountId, [...candidates.keys()]);
    const states = new Map<string, MailboxWatchState>();
    for (const [mailbox, state] of candidates) if (present.get(mailbox) === true) states.set(mailbox, state);
    return states;
  }

  async loadMessages(accountId: string, mailbox: string): Promise<Map<string, string[]>> {
    const key = keys.watchMessages(accountId, mailbox);
    const messages = new Map<string, string[]>();
    let cursor = '0';
    do {
      const [next, flat] = await this.call('read', () => this.redis.hscan(key, cursor, 'COUNT', SCAN_COUNT));
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const field = flat[i] ?? '';
        if (field === '') continue; // the presence marker
        const flags = decodeFlags(flat[i + 1] ?? '');
        if (flags !== null) messages.set(field, flags);
      }
      cursor = next;
    } while (cursor !== '0');
    return messages;
  }

  async dropAccount(accountId: string): Promise<void> {
    const statesKey = keys.watchStates(accountId);
    const mailboxes = await this.call('write', () => this.redis.hkeys(statesKey));
    const all = [
      keys.events(accountId),
      keys.eventsMeta(accountId),
      statesKey,
      ...mailboxes.map((mailbox) => keys.watchMessages(accountId, mailbox)),
    ];
    // One UNLINK (DEL, freeing in the background) of keys in one slot is legal on a Cluster too. A
    // messages hash whose state was already gone is not named here; it expires with its TTL.
    await this.call('write', () => this.redis.unlink(all));
    this.stateAccounts.delete(accountId);
  }

  /** Stops listening; the Redis client is the caller's (shared with the stores and the cache). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.refreshTimer);
    this.listeners.clear();
    await this.hints.close();
  }

  /** Writes `set` into a staging hash in parts of STAGE_PAIRS, each a short command. */
  private async stage(key: string, set: ReadonlyArray<[string, string[]]>): Promise<void> {
    for (let from = 0; from < set.length; from += STAGE_PAIRS) {
      const flat: string[] = [];
      for (const [field, flags] of set.slice(from, from + STAGE_PAIRS)) flat.push(field, JSON.stringify(flags));
      const results = await this.call('write', () => this.redis.pipeline().hset(key, flat).pexpire(key, STAGING_TTL_MS).exec());
      const failed = results?.find(([err]) => err !== null)?.[0];
      if (failed) throw new GatewayError('SERVICE_UNAVAILABLE', 'the event log could not be written', { cause: failed });
    }
  }

  /**
   * Pushes the expiry of every state key of the account (the states hash, each mailbox's messages,
   * the meta) out to the state TTL. Answers, per mailbox asked about, whether its messages hash exists.
   */
  private async refreshStateTtl(accountId: string, mailboxes: string[]): Promise<Map<string, boolean>> {
    const ttl = this.settings.stateTtlMs;
    const pipeline = this.redis.pipeline();
    pipeline.pexpire(keys.watchStates(accountId), ttl);
    for (const mailbox of mailboxes) pipeline.pexpire(keys.watchMessages(accountId, mailbox), ttl);
    const results = await this.call('read', () => pipeline.exec());
    const present = new Map<string, boolean>();
    mailboxes.forEach((mailbox, i) => {
      const [err, value] = results?.[i + 1] ?? [new Error('no reply'), 0];
      if (err) throw new GatewayError('SERVICE_UNAVAILABLE', 'the event log could not read the watch state', { cause: err });
      present.set(mailbox, Number(value) === 1);
    });
    this.stateAccounts.add(accountId);
    return present;
  }

  /** Refreshes the state TTLs of every account this process keeps state for, one after another. */
  private async refreshAll(): Promise<void> {
    for (const accountId of [...this.stateAccounts]) {
      if (this.closed) return;
      try {
        const mailboxes = await this.call('read', () => this.redis.hkeys(keys.watchStates(accountId)));
        await this.refreshStateTtl(accountId, mailboxes);
      } catch {
        // Redis unreachable: the next round tries again, long before any TTL runs out.
      }
    }
  }

  private call<T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    return boundedStoreCall('event log', kind, this.operationTimeoutMs, op);
  }
}

function parseEntry(accountId: string, entry: unknown): MailEvent | null {
  if (!Array.isArray(entry)) return null;
  const [id, fields] = entry as [unknown, unknown];
  if (typeof id !== 'string' || !Array.isArray(fields)) return null;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'e' && typeof fields[i + 1] === 'string') return decodeEvent(id, accountId, fields[i + 1] as string);
  }
  return null;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isEventId(value: unknown): value is string {
  return typeof value === 'string' && isValidEventId(value);
}
