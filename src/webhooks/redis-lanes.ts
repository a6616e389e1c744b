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
 * lost with an expired stream is made again where it stood) and the head's retry state. Settling
 * acknowledges and records in one MULTI. Every key here expires (the stream with the log's TTL, the
 * hash with the watch state's), so a deleted webhook's leftovers go away by themselves.
 *
 * Works on Redis Cluster: every command names keys of one account's slot.
 */
import { keys } from '../cache/keys.js';
import type { RedisClient } from '../cache/redis-connection.js';
import { boundedStoreCall } from '../accounts/redis-store.js';
import { DEFAULT_STATE_TTL_MS, streamTtlMs } from '../events/log/redis-event-log.js';
import { compareEventIds } from '../events/log/event-id.js';
import { decodeEvent } from '../events/log/event-shape.js';
import type { DeliveryLanes, LaneEntry, LaneKey, RetryState } from './lanes.js';

/** Every process reads a lane under this one name; the delivery lease decides who reads. */
const CONSUMER = 'lane';
const OPERATION_TIMEOUT_MS = 5_000;

type StreamReply = Array<[key: string, entries: Array<[id: string, fields: string[] | null]>]> | null;

export interface RedisDeliveryLanesOptions {
  /** The event log's retention (ms): a stream this creates expires like one the log created. */
  retentionMs: number;
  /** How long lane state outlives its last write (default: the watch state's 30 days). */
  stateTtlMs?: number;
}

export class RedisDeliveryLanes implements DeliveryLanes {
  private readonly streamTtlMs: number;
  private readonly stateTtlMs: number;

  constructor(
    private readonly redis: RedisClient,
    options: RedisDeliveryLanesOptions,
  ) {
    this.streamTtlMs = streamTtlMs(options.retentionMs);
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
          await this.createGroup(lane, startId);
        }
      }
    });
  }

  async settle(lane: LaneKey, eventIds: string[]): Promise<void> {
    if (eventIds.length === 0) return;
    const newest = eventIds.reduce((a, b) => (compareEventIds(a, b) >= 0 ? a : b));
    const lanesKey = keys.webhookLanes(lane.accountId);
    await this.call('write', async () => {
      await this.redis
        .multi()
        .xack(keys.events(lane.accountId), groupName(lane.webhookId), ...eventIds)
        .hset(lanesKey, lane.webhookId, newest)
        .hdel(lanesKey, retryField(lane.webhookId))
        .pexpire(lanesKey, this.stateTtlMs)
        .exec()
        .then(failedInTransaction);
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
   * lane never read. A stream made here (MKSTREAM: no event yet) expires like the log's own.
   */
  private async createGroup(lane: LaneKey, startId: string): Promise<void> {
    const streamKey = keys.events(lane.accountId);
    const settled = await this.redis.hget(keys.webhookLanes(lane.accountId), lane.webhookId);
    const from = settled !== null && compareEventIds(settled, startId) > 0 ? settled : startId;
    try {
      await this.redis.xgroup('CREATE', streamKey, groupName(lane.webhookId), from, 'MKSTREAM');
    } catch (err) {
      // Made meanwhile by a process that held the lease before this one: what it made stands.
      if (!String((err as Error).message).startsWith('BUSYGROUP')) throw err;
    }
    if ((await this.redis.pttl(streamKey)) === -1) await this.redis.pexpire(streamKey, this.streamTtlMs);
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
