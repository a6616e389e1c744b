/**
 * The outbox on Redis (decision 0016): entries and their bytes in keys of the one `{outbox}` slot,
 * and the queue a Redis Streams consumer group, the engine webhook deliveries run on (decision 0015).
 *
 * Queueing is one script: the entry, its bytes, the account's index, the Idempotency-Key and the job
 * (`XADD`) are written together or not at all, and a key seen before answers the first receipt
 * instead. When the queueing process has room, the same script reads the new job for it and marks
 * the entry `sending`, so the first attempt starts from what that process holds, without a round
 * trip. A large message's bytes are staged first (`SET … PX`, then `APPEND`s) and kept by the script
 * (`PERSIST`); staged bytes whose process died before queueing expire.
 *
 * Every gateway process reads the group `senders` as a consumer of its own: `XREADGROUP >` hands each
 * new job to one of them, and the job stays in that consumer's pending entries list until
 * its entry is final (`XACK` + `XDEL`). A process keeps its jobs by claiming them afresh every third of
 * `claimIdleMs` (also while a retry waits); one that died stops doing so, and after `claimIdleMs` any
 * other process takes its jobs over with `XAUTOCLAIM` and goes on from the entry as last saved.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { keys } from '../cache/keys.js';
import type { RedisClient } from '../cache/redis-connection.js';
import { boundedStoreCall } from '../accounts/redis-store.js';
import { outboxEntryProblem } from './entry-shape.js';
import type { IdempotencyClaim, OutboxEntry, OutboxJob, OutboxQueue, OutboxStore, QueuedRaw, RawStaging, SendReceipt } from './types.js';

const GROUP = 'senders';
const OPERATION_TIMEOUT_MS = 30_000;
/** Jobs read per XREADGROUP. */
const READ_BATCH = 16;
/** Staged bytes of a message never queued (its process died while composing) expire after this. */
const STAGED_TTL_MS = 3_600_000;
/** A large message is read back for SMTP in pieces of this size (GETRANGE). */
const READ_PIECE_BYTES = 1024 * 1024;
/** A consumer left with nothing pending and idle this long is removed from the group. */
const DEAD_CONSUMER_IDLE_MS = 3_600_000;

/**
 * KEYS: entry, raw, account index, job stream, idempotency key (or the entry key again when none).
 * ARGV: entry JSON (queued), raw bytes ('' when staged), created at (ms), queue id, idempotency TTL
 * (ms, 0 = none), receipt JSON, 'staged' or 'memory', group ('' = do not claim), consumer, entry
 * JSON (begun: sending, one attempt).
 * Answers {'replayed', earlier receipt} when the idempotency key is taken; {'gone'} when staged bytes
 * expired; else {'queued'}, or with a group {'claimed', stream id} when the new job went to this
 * consumer, or {'other', stream id, queue id} when an older job waiting did.
 */
const ENQUEUE_SCRIPT = `
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  local earlier = redis.call('GET', KEYS[5])
  if earlier then
    if ARGV[7] == 'staged' then redis.call('DEL', KEYS[2]) end
    return {'replayed', earlier}
  end
end
if ARGV[7] == 'staged' then
  if redis.call('EXISTS', KEYS[2]) == 0 then return {'gone'} end
  redis.call('PERSIST', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
if ttl > 0 then redis.call('SET', KEYS[5], ARGV[6], 'PX', ttl) end
local streamId = redis.call('XADD', KEYS[4], '*', 'q', ARGV[4])
if ARGV[8] ~= '' then
  local got = redis.call('XREADGROUP', 'GROUP', ARGV[8], ARGV[9], 'COUNT', 1, 'STREAMS', KEYS[4], '>')
  local job = got and got[1][2][1]
  if job and job[1] == streamId then
    redis.call('SET', KEYS[1], ARGV[10])
    return {'claimed', streamId}
  end
  redis.call('SET', KEYS[1], ARGV[1])
  if job then return {'other', job[1], job[2][2]} end
  return {'queued'}
end
redis.call('SET', KEYS[1], ARGV[1])
return {'queued'}
`;

/** KEYS: entry. Marks it sending (+1 attempt) unless cancelled or final; answers the entry JSON or nil. */
const BEGIN_SCRIPT = `
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local entry = cjson.decode(raw)
if entry.status ~= 'queued' and entry.status ~= 'retrying' and entry.status ~= 'sending' then return false end
entry.status = 'sending'
entry.attempts = entry.attempts + 1
entry.updatedAt = ARGV[1]
local encoded = cjson.encode(entry)
redis.call('SET', KEYS[1], encoded)
return encoded
`;

/**
 * KEYS: entry, raw. ARGV: now (ISO), keep (ms). Cancels a queued or retrying entry (its bytes go);
 * answers {outcome, entry JSON}. (cjson would write an empty array as {}; an entry has none.)
 */
const CANCEL_SCRIPT = `
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing', false} end
local entry = cjson.decode(raw)
if entry.status ~= 'queued' and entry.status ~= 'retrying' then return {'final', raw} end
entry.status = 'cancelled'
entry.nextAttemptAt = cjson.null
entry.updatedAt = ARGV[1]
local encoded = cjson.encode(entry)
redis.call('SET', KEYS[1], encoded, 'PX', tonumber(ARGV[2]))
redis.call('DEL', KEYS[2])
return {'cancelled', encoded}
`;

/**
 * KEYS: job stream. ARGV: group, consumer, then ids. Claims again (resetting their idle time) the ids
 * this consumer still owns; answers the ids it no longer owns (another process took them over).
 */
const KEEP_SCRIPT = `
local lost = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
`;

export interface RedisOutboxOptions {
  redis: RedisClient;
  log: Logger;
  /** A job whose process stopped claiming it is taken over after this long. */
  claimIdleMs: number;
  /** How often the stream is read for new jobs when nothing woke the reader. */
  pollIntervalMs?: number;
}

interface HeldJob {
  streamId: string;
  lost: AbortController;
}

export class RedisOutbox implements OutboxStore, OutboxQueue {
  private readonly redis: RedisClient;
  private readonly consumer = `p_${randomBytes(8).toString('hex')}`;
  private readonly held = new Map<string, HeldJob>();
  private handler: ((job: OutboxJob & { lost: AbortSignal }) => Promise<void>) | undefined;
  private capacity: () => number = () => READ_BATCH;
  private groupReady = false;
  private closed = false;
  private reading = false;
  private readAgain = false;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly options: RedisOutboxOptions) {
    this.redis = options.redis;
  }

  async enqueue(entry: OutboxEntry, raw: QueuedRaw, idempotency?: IdempotencyClaim): Promise<{ receipt: SendReceipt; replayed: boolean }> {
    const receipt: SendReceipt = { queueId: entry.queueId, messageId: entry.messageId };
    const idempotencyKey = idempotency ? keys.outboxIdempotency(idempotency.keyHash) : keys.outboxEntry(entry.queueId);
    // With room, the new job is read for this process in the same step and handed over with what it
    // already holds: no read of the stream, of the entry or of its bytes before the first attempt.
    const claim = this.handler !== undefined && this.groupReady && !this.closed && this.capacity() > 0;
    const begun: OutboxEntry = { ...entry, status: 'sending', attempts: entry.attempts + 1 };
    const reply = (await this.call('write', () =>
      this.redis.eval(
        ENQUEUE_SCRIPT,
        5,
        keys.outboxEntry(entry.queueId),
        keys.outboxRaw(entry.queueId),
        keys.outboxAccount(entry.account),
        keys.outboxJobs(),
        idempotencyKey,
        JSON.stringify(entry),
        raw.kind === 'memory' ? raw.bytes : '',
        String(Date.parse(entry.createdAt)),
        entry.queueId,
        String(idempotency?.ttlMs ?? 0),
        JSON.stringify(receipt),
        raw.kind,
        claim ? GROUP : '',
        this.consumer,
        claim ? JSON.stringify(begun) : '',
      ),
    )) as [string, ...string[]];
    const [outcome, ...rest] = reply;
    if (outcome === 'replayed') return { receipt: JSON.parse(rest[0]!) as SendReceipt, replayed: true };
    if (outcome === 'gone') throw new Error(`the staged bytes of outbox entry ${entry.queueId} expired before it was queued`);
    if (outcome === 'claimed') {
      this.hand(rest[0]!, ['q', entry.queueId], { entry: begun, raw: raw.kind === 'memory' ? raw.bytes : (raw.held ?? null) });
    } else {
      if (outcome === 'other') this.hand(rest[0]!, ['q', rest[1]!]);
      // Read now rather than at the next poll (a process with room reads it; any may).
      this.wake();
    }
    return { receipt, replayed: false };
  }

  stage(queueId: string): RawStaging {
    const key = keys.outboxRaw(queueId);
    let first = true;
    return {
      holdWhenNeeded: true,
      append: async (chunk) => {
        // The first piece sets the expiry that unclaimed bytes go by; APPEND keeps it. Pieces may be
        // written before the earlier ones are confirmed: one connection keeps them in order.
        const setting = first;
        first = false;
        if (setting) await this.call('write', () => this.redis.set(key, chunk, 'PX', STAGED_TTL_MS));
        else await this.call('write', () => this.redis.append(key, chunk));
      },
      discard: async () => {
        await this.call('write', () => this.redis.del(key));
      },
    };
  }

  async replay(idempotency: IdempotencyClaim): Promise<SendReceipt | null> {
    const text = await this.call('read', () => this.redis.get(keys.outboxIdempotency(idempotency.keyHash)));
    return text === null ? null : (JSON.parse(text) as SendReceipt);
  }

  async get(account: string, queueId: string): Promise<OutboxEntry | null> {
    const entry = await this.peek(queueId);
    return entry !== null && entry.account === account ? entry : null;
  }

  async peek(queueId: string): Promise<OutboxEntry | null> {
    const text = await this.call('read', () => this.redis.get(keys.outboxEntry(queueId)));
    return text === null ? null : this.decode(text, queueId);
  }

  async list(account: string): Promise<OutboxEntry[]> {
    const ids = await this.call('read', () => this.redis.zrevrange(keys.outboxAccount(account), '0', '-1'));
    if (ids.length === 0) return [];
    const texts = await this.call('read', () => this.redis.mget(...ids.map((id) => keys.outboxEntry(id))));
    const entries: OutboxEntry[] = [];
    const gone: string[] = [];
    texts.forEach((text, index) => {
      const entry = text === null ? null : this.decode(text, ids[index]!);
      if (entry === null) gone.push(ids[index]!);
      else entries.push(entry);
    });
    // Entries expire by TTL once final; their index members go when a read finds them missing.
    if (gone.length > 0) await this.call('write', () => this.redis.zrem(keys.outboxAccount(account), ...gone)).catch(() => undefined);
    return entries;
  }

  async raw(queueId: string): Promise<Buffer | null> {
    const key = keys.outboxRaw(queueId);
    const size = await this.call('read', () => this.redis.strlen(key));
    if (size === 0) return null;
    if (size <= READ_PIECE_BYTES) return this.call('read', () => this.redis.getBuffer(key));
    // Large: read in pieces into one buffer of the right size (a whole GET would be parsed into
    // chunks and then joined, holding the message twice).
    const whole = Buffer.allocUnsafe(size);
    for await (const { start, piece } of this.pieces(queueId, key, size)) piece.copy(whole, start);
    return whole;
  }

  async rawStream(queueId: string): Promise<Readable | null> {
    const key = keys.outboxRaw(queueId);
    const size = await this.call('read', () => this.redis.strlen(key));
    if (size === 0) return null;
    const pieces = this.pieces(queueId, key, size);
    return Readable.from(
      (async function* (): AsyncGenerator<Buffer> {
        for await (const { piece } of pieces) yield piece;
      })(),
      { objectMode: false },
    );
  }

  private async *pieces(queueId: string, key: string, size: number): AsyncGenerator<{ start: number; piece: Buffer }> {
    for (let start = 0; start < size; start += READ_PIECE_BYTES) {
      const end = Math.min(size, start + READ_PIECE_BYTES) - 1;
      const piece = await this.call('read', () => this.redis.getrangeBuffer(key, start, end));
      // The bytes went meanwhile (the account was deleted): a short message must not reach DATA's end.
      if (piece.length !== end - start + 1) throw new Error(`the bytes of outbox entry ${queueId} went while they were read`);
      yield { start, piece };
    }
  }

  async begin(queueId: string): Promise<OutboxEntry | null> {
    const text = await this.call('write', () => this.redis.eval(BEGIN_SCRIPT, 1, keys.outboxEntry(queueId), new Date().toISOString()));
    return typeof text === 'string' ? this.decode(text, queueId) : null;
  }

  async save(entry: OutboxEntry): Promise<void> {
    await this.call('write', () => this.redis.set(keys.outboxEntry(entry.queueId), JSON.stringify(entry)));
  }

  async finish(entry: OutboxEntry, keepMs: number): Promise<void> {
    await this.call('write', () =>
      this.redis
        .multi()
        .set(keys.outboxEntry(entry.queueId), JSON.stringify(entry), 'PX', keepMs)
        .del(keys.outboxRaw(entry.queueId))
        .exec(),
    );
  }

  async cancel(account: string, queueId: string, keepMs: number): Promise<{ outcome: 'cancelled' | 'final' | 'missing'; entry: OutboxEntry | null }> {
    if ((await this.get(account, queueId)) === null) return { outcome: 'missing', entry: null };
    const [outcome, text] = (await this.call('write', () =>
      this.redis.eval(CANCEL_SCRIPT, 2, keys.outboxEntry(queueId), keys.outboxRaw(queueId), new Date().toISOString(), String(keepMs)),
    )) as [string, string | null];
    const entry = typeof text === 'string' ? this.decode(text, queueId) : null;
    if (outcome === 'cancelled' || outcome === 'final') return { outcome, entry };
    return { outcome: 'missing', entry: null };
  }

  async depth(): Promise<number> {
    // XLEN counts jobs not yet acknowledged: queued, sending and retrying entries.
    return this.call('read', () => this.redis.xlen(keys.outboxJobs()));
  }

  async dropAccount(account: string): Promise<void> {
    const ids = await this.call('read', () => this.redis.zrange(keys.outboxAccount(account), '0', '-1'));
    const pipeline = this.redis.multi();
    for (const id of ids) pipeline.del(keys.outboxEntry(id), keys.outboxRaw(id));
    pipeline.del(keys.outboxAccount(account));
    await this.call('write', () => pipeline.exec());
    // Their jobs find no entry and are acknowledged by whoever holds them.
  }

  async ping(): Promise<void> {
    await this.call('read', () => this.redis.ping());
  }

  start(handler: (job: OutboxJob & { lost: AbortSignal }) => Promise<void>, capacity?: () => number): void {
    this.handler = handler;
    if (capacity) this.capacity = capacity;
    const every = (ms: number, task: () => Promise<void>): void => {
      const timer = setInterval(() => void task().catch((err: unknown) => this.warn(err, 'outbox queue step failed')), ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.options.pollIntervalMs ?? 1000, () => this.read());
    every(Math.max(100, Math.floor(this.options.claimIdleMs / 3)), () => this.keep());
    every(Math.max(100, Math.floor(this.options.claimIdleMs / 2)), () => this.takeOver());
    this.wake();
    void this.takeOver().catch((err: unknown) => this.warn(err, 'outbox take-over failed'));
  }

  private wake(): void {
    void this.read().catch((err: unknown) => this.warn(err, 'outbox read failed'));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    // Jobs still held stay pending under this consumer: another process takes them over after
    // claimIdleMs, or this one's successor does (a restart reads its own pending jobs first).
  }

  /** New jobs, as many as there is room for; reads again when woken meanwhile. */
  private async read(): Promise<void> {
    if (this.closed || this.handler === undefined) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = true;
    try {
      do {
        this.readAgain = false;
        await this.ensureGroup();
        const room = Math.min(READ_BATCH, this.capacity());
        if (room <= 0) break;
        const reply = (await this.redis.xreadgroup('GROUP', GROUP, this.consumer, 'COUNT', room, 'STREAMS', keys.outboxJobs(), '>')) as
          | Array<[string, Array<[string, string[]]>]>
          | null;
        const entries = reply?.[0]?.[1] ?? [];
        for (const [streamId, fields] of entries) this.hand(streamId, fields);
        if (entries.length === room) this.readAgain = true;
      } while (this.readAgain && !this.closed);
    } finally {
      this.reading = false;
    }
  }

  /** Jobs of processes that stopped claiming them (and this consumer's own, after a restart under a new name). */
  private async takeOver(): Promise<void> {
    if (this.closed || this.handler === undefined) return;
    await this.ensureGroup();
    let cursor = '0-0';
    do {
      const reply = (await this.redis.xautoclaim(keys.outboxJobs(), GROUP, this.consumer, String(this.options.claimIdleMs), cursor, 'COUNT', 100)) as [
        string,
        Array<[string, string[]] | null>,
        string[]?,
      ];
      cursor = reply[0];
      for (const item of reply[1]) if (item) this.hand(item[0], item[1]);
      // Ids whose stream entry was deleted: nothing to send.
      const deleted = reply[2] ?? [];
      if (deleted.length > 0) await this.redis.xack(keys.outboxJobs(), GROUP, ...deleted);
    } while (cursor !== '0-0' && !this.closed);
    await this.forgetDeadConsumers();
  }

  /** Claims held jobs afresh so no other process takes them; a job another process took is let go. */
  private async keep(): Promise<void> {
    if (this.closed || this.held.size === 0) return;
    const streamIds = [...this.held.values()].map((job) => job.streamId);
    const lost = (await this.redis.eval(KEEP_SCRIPT, 1, keys.outboxJobs(), GROUP, this.consumer, ...streamIds)) as string[];
    for (const streamId of lost) {
      for (const [queueId, job] of this.held) {
        if (job.streamId !== streamId) continue;
        this.held.delete(queueId);
        job.lost.abort(new Error('another gateway process took this outbox job over'));
      }
    }
  }

  private hand(streamId: string, fields: string[], begun?: OutboxJob['begun']): void {
    const at = fields.indexOf('q');
    const queueId = at >= 0 ? fields[at + 1] : undefined;
    if (queueId === undefined) {
      void this.acknowledge(streamId);
      return;
    }
    if (this.held.has(queueId)) return;
    const lost = new AbortController();
    this.held.set(queueId, { streamId, lost });
    const job = {
      queueId,
      ...(begun && { begun }),
      lost: lost.signal,
      done: async () => {
        if (this.held.get(queueId)?.streamId === streamId) this.held.delete(queueId);
        await this.acknowledge(streamId);
      },
    };
    this.handler!(job).catch((err: unknown) => {
      // The worker logs its own failures; a job it gave up on is taken over after claimIdleMs.
      if (this.held.get(queueId)?.streamId === streamId) this.held.delete(queueId);
      this.warn(err, 'outbox job failed');
    });
  }

  private async acknowledge(streamId: string): Promise<void> {
    await this.call('write', () => this.redis.multi().xack(keys.outboxJobs(), GROUP, streamId).xdel(keys.outboxJobs(), streamId).exec());
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      // From the start of the stream: jobs queued before the group existed are not skipped.
      await this.redis.xgroup('CREATE', keys.outboxJobs(), GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
    this.groupReady = true;
  }

  private async forgetDeadConsumers(): Promise<void> {
    const consumers = (await this.redis.xinfo('CONSUMERS', keys.outboxJobs(), GROUP)) as unknown[][];
    for (const consumer of consumers) {
      const info = new Map<string, unknown>();
      for (let i = 0; i + 1 < consumer.length; i += 2) info.set(String(consumer[i]), consumer[i + 1]);
      const name = String(info.get('name'));
      if (name !== this.consumer && Number(info.get('pending')) === 0 && Number(info.get('idle')) > DEAD_CONSUMER_IDLE_MS) {
        await this.redis.xgroup('DELCONSUMER', keys.outboxJobs(), GROUP, name);
      }
    }
  }

  private decode(text: string, queueId: string): OutboxEntry | null {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    const problem = outboxEntryProblem(value);
    if (problem !== null) {
      this.options.log.warn({ queueId, problem }, 'an outbox entry in Redis cannot be read; it is skipped');
      return null;
    }
    return value as OutboxEntry;
  }

  private warn(err: unknown, message: string): void {
    if (this.closed) return;
    this.options.log.warn({ err: { message: (err as Error).message } }, message);
  }

  private call<T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    return boundedStoreCall('outbox', kind, OPERATION_TIMEOUT_MS, op);
  }
}
