/**
 * Delivery lanes on Redis Streams consumer groups (decision 0015): one group per webhook on each
 * account's event stream (`keys.events`), so the queue is the log itself, nothing is copied, and
 * Redis keeps what is in flight. An event handed out by XREADGROUP stays in the group's pending
 * entries list until XACK; a process that dies mid-delivery leaves it there, and whichever process
 * takes the account's delivery lease next reads the pending entries first (`XREADGROUP ... 0`) and
 * sends them again. Every process reads as the same consumer name: only the lease holder reads a
 * lane, so the pending list is the lane's, not a process's, and needs no XAUTOCLAIM hand-over.
 *
 * Beside the stream, in its slot, `keys.webhookLanes` keeps per lane the newest id settled (so a group
 * lost with an expired stream is made again where it stood) and the head's retry state. Settling is
 * one script (SETTLE_SCRIPT): acknowledge, move the settled id forward, clear the retry. Nothing here
 * makes a stream; every key expires (the stream with the log's TTL, the hash with the watch state's),
 * so a deleted webhook's leftovers go away by themselves.
 *
 * Works on Redis Cluster: every command names keys of one account's slot.
 */
import { keys } from '../cache/keys.js';
import type { RedisClient } from '../cache/redis-connection.js';
import { boundedStoreCall } from '../accounts/redis-store.js';
import { DEFAULT_STATE_TTL_MS } from '../events/log/redis-event-log.js';
import { compareEventIds } from '../events/log/event-id.js';
import { decodeEvent } from '../events/log/event-shape.js';
import type { DeliveryLanes, LaneEntry, LaneKey, RetryState } from './lanes.js';

/** Every process reads a lane under this one name; the delivery lease decides who reads. */
const CONSUMER = 'lane';
const OPERATION_TIMEOUT_MS = 5_000;

/**
 * Settles a run of a lane's events in one step. KEYS: the account's event stream, its lanes hash (one
 * slot). ARGV: group, the lane's settled field, its retry field, the hash's TTL (ms), the newest id,
 * then the ids. The settled id only moves forward (a late settle from a process that lost the lease
 * cannot move it back), and the retry state goes only when it was for one of these events (so a
 * settle landing after the next head's failure keeps that head's back-off).
 */
const SETTLE_SCRIPT = `
local ids = {}
for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
local function newer(a, b)
  local am, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bm, bseq = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return true end
  if tonumber(am) ~= tonumber(bm) then return tonumber(am) > tonumber(bm) end
  return tonumber(aseq) > tonumber(bseq)
end
local settled = redis.call('HGET', KEYS[2], ARGV[2])
if not settled or newer(ARGV[5], settled) then redis.call('HSET', KEYS[2], ARGV[2], ARGV[5]) end
local retry = redis.call('HGET', KEYS[2], ARGV[3])
if retry then
  local ok, state = pcall(cjson.decode, retry)
  local clear = not ok or type(state) ~= 'table' or type(state.eventId) ~= 'string'
  if not clear then
    for _, id in ipairs(ids) do
      if id == state.eventId then clear = true break end
    end
  end
  if clear then redis.call('HDEL', KEYS[2], ARGV[3]) end
end
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
return 1`;

type StreamReply = Array<[key: string, entries: Array<[id: string, fields: string[] | null]>]> | null;

export interface RedisDeliveryLanesOptions {
  /** How long lane state outlives its last write (default: the watch state's 30 days). */
  stateTtlMs?: number;
}

export class RedisDeliveryLanes implements DeliveryLanes {
  private readonly stateTtlMs: number;

  constructor(
    private readonly redis: RedisClient,
    options: RedisDeliveryLanesOptions = {},
  ) {
    this.stateTtlMs = options.stateTtlMs ?? DEFAULT_STATE_TTL_MS;
  }

  async pending(lane: LaneKey, startId: string, limit: number): Promise<LaneEntry[]> {
    return this.call('read', async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          // Handed out before and never acknowledged first (a delivery cut short), then new ones.
          const inFlight = await this.read(lane, '0', limit);
          if (inFlight.length > 0) return inFlight;
          return await this.read(lane, '>', limit);
        } catch (err) {
          if (attempt > 0 || !String((err as Error).message).startsWith('NOGROUP')) throw err;
          if (!(await this.createGroup(lane, startId))) return [];
        }
      }
    });
  }

  async settle(lane: LaneKey, eventIds: string[]): Promise<void> {
    if (eventIds.length === 0) return;
    const newest = eventIds.reduce((a, b) => (compareEventIds(a, b) >= 0 ? a : b));
    await this.call('write', async () => {
      await this.redis.eval(
        SETTLE_SCRIPT,
        2,
        keys.events(lane.accountId),
        keys.webhookLanes(lane.accountId),
        groupName(lane.webhookId),
        lane.webhookId,
        retryField(lane.webhookId),
        String(this.stateTtlMs),
        newest,
        ...eventIds,
      );
    });
  }

  async retryState(lane: LaneKey): Promise<RetryState | null> {
    const text = await this.call('read', () => this.redis.hget(keys.webhookLanes(lane.accountId), retryField(lane.webhookId)));
    return text === null ? null : parseRetryState(text);
  }

  async saveRetryState(lane: LaneKey, state: RetryState): Promise<void> {
    const lanesKey = keys.webhookLanes(lane.accountId);
    await this.call('write', async () => {
      await this.redis
        .multi()
        .hset(lanesKey, retryField(lane.webhookId), JSON.stringify(state))
        .pexpire(lanesKey, this.stateTtlMs)
        .exec()
        .then(failedInTransaction);
    });
  }

  async dropWebhook(webhookId: string, accountIds: string[]): Promise<void> {
    await this.call('write', async () => {
      await Promise.all(
        accountIds.map(async (accountId) => {
          await this.redis.xgroup('DESTROY', keys.events(accountId), groupName(webhookId)).catch(() => undefined);
          await this.redis.hdel(keys.webhookLanes(accountId), webhookId, retryField(webhookId));
        }),
      );
    });
  }

  async dropAccount(accountId: string): Promise<void> {
    // The stream and its groups go with the event log's own keys (EventLog.dropAccount).
    await this.call('write', () => this.redis.unlink(keys.webhookLanes(accountId)));
  }

  async close(): Promise<void> {}

  private async read(lane: LaneKey, from: '0' | '>', limit: number): Promise<LaneEntry[]> {
    const reply = (await this.redis.xreadgroup(
      'GROUP',
      groupName(lane.webhookId),
      CONSUMER,
      'COUNT',
      limit,
      'STREAMS',
      keys.events(lane.accountId),
      from,
    )) as StreamReply;
    const entries = reply?.[0]?.[1] ?? [];
    return entries.map(([id, fields]) => {
      // A pending entry trimmed away by retention comes back without its fields.
      const text = fields === null ? null : fieldValue(fields, 'e');
      return { id, event: text === null ? null : decodeEvent(id, lane.accountId, text) };
    });
  }

  /**
   * Makes the lane's group where the lane stood (the newest id it settled), or after `startId` for a
   * lane never read. Answers false when the account has no stream (no event yet, or the account was
   * deleted): nothing to read, and no stream is made here (no MKSTREAM), so a lane never brings back
   * a deleted account's log. Its first event makes the stream, and the group starts before that event.
   */
  private async createGroup(lane: LaneKey, startId: string): Promise<boolean> {
    const settled = await this.redis.hget(keys.webhookLanes(lane.accountId), lane.webhookId);
    const from = settled !== null && compareEventIds(settled, startId) > 0 ? settled : startId;
    try {
      await this.redis.xgroup('CREATE', keys.events(lane.accountId), groupName(lane.webhookId), from);
      return true;
    } catch (err) {
      const message = String((err as Error).message);
      if (message.includes('requires the key to exist')) return false;
      // Made meanwhile by a process that held the lease before this one: what it made stands.
      if (!message.startsWith('BUSYGROUP')) throw err;
      return true;
    }
  }

  private call<T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    return boundedStoreCall('webhook delivery queue', kind, OPERATION_TIMEOUT_MS, op);
  }
}

function groupName(webhookId: string): string {
  return `webhook:${webhookId}`;
}

function retryField(webhookId: string): string {
  return `${webhookId}:retry`;
}

function fieldValue(fields: string[], name: string): string | null {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1]!;
  return null;
}

function failedInTransaction(results: Array<[Error | null, unknown]> | null): void {
  if (results === null) throw new Error('transaction was discarded');
  for (const [err] of results) if (err) throw err;
}

export function parseRetryState(text: string): RetryState | null {
  try {
    const value = JSON.parse(text) as Partial<RetryState>;
    if (
      typeof value.eventId === 'string' &&
      Number.isSafeInteger(value.attempts) &&
      Number.isFinite(value.firstAttemptAtMs) &&
      Number.isFinite(value.nextAttemptAtMs)
    ) {
      return value as RetryState;
    }
  } catch {
    // damaged: the head starts afresh
  }
  return null;
}
