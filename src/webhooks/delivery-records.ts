/**
 * Each webhook's latest delivery records (API.md: `GET /v1/webhooks/{id}/deliveries`), newest first,
 * at most `kept` (default 100) per webhook: a history for a person looking into a failing receiver,
 * not the delivery queue (that is the dispatcher's, and holds what is still to be sent).
 *
 * - Redis: one list per webhook (`keys.webhookDeliveries(id)`); LPUSH, LTRIM and EXPIRE in one MULTI
 *   on that one key, so the bound holds whatever the number of writers, on Redis Cluster too. TTL'd
 *   (refreshed on every push): records of a webhook deleted while Redis was unreachable go away, and
 *   under `maxmemory-policy volatile-lru` Redis may evict them before webhooks or accounts: they are
 *   history, not state.
 * - Files: `webhook-deliveries/<id>.json` under DATA_DIR, rewritten atomically on every add (a
 *   hundred small records: a rewrite costs about what an append would, and the file is never torn).
 *   Writes go one after another; reads are served from memory once a file was read.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { keys } from '../cache/keys.js';
import { boundedStoreCall } from '../accounts/redis-store.js';
import { GatewayError } from '../errors.js';
import { SerialQueue } from '../util/serial-queue.js';
import { errnoCode, writeFileAtomic } from '../util/fs.js';
import { DELIVERY_RECORDS_KEPT, deliveryRecordProblem, isWebhookId, type DeliveryRecord, type DeliveryRecords } from './types.js';

export const DELIVERIES_DIR = 'webhook-deliveries';
const REDIS_TIMEOUT_MS = 5_000;
/** A webhook's records outlive its last delivery by this long (its receiver may have been down for days). */
const REDIS_TTL_SECONDS = 30 * 86_400;

export interface DeliveryRecordsOptions {
  /** Records kept per webhook (default 100). */
  kept?: number;
}

/** Ids become file names and key tags: only ids of the webhook id pattern are taken, so none can name another path. */
function checkedId(webhookId: string): string {
  if (!isWebhookId(webhookId)) throw new GatewayError('WEBHOOK_NOT_FOUND', `No webhook ${webhookId}`);
  return webhookId;
}

export class FileDeliveryRecords implements DeliveryRecords {
  private readonly writes = new SerialQueue();
  private readonly dir: string;
  private readonly kept: number;
  /** Records as last written or read, by webhook id (newest first). */
  private readonly known = new Map<string, DeliveryRecord[]>();

  constructor(dataDir: string, options: DeliveryRecordsOptions = {}) {
    this.dir = path.join(dataDir, DELIVERIES_DIR);
    this.kept = options.kept ?? DELIVERY_RECORDS_KEPT;
  }

  async add(webhookId: string, record: DeliveryRecord): Promise<void> {
    const id = checkedId(webhookId);
    return this.writes.run(async () => {
      const next = [record, ...(await this.read(id))].slice(0, this.kept);
      try {
        await writeFileAtomic(this.dir, this.file(id), `${JSON.stringify({ deliveries: next })}\n`);
      } catch (err) {
        throw new GatewayError('SERVICE_UNAVAILABLE', 'the webhook delivery records could not be written', { cause: err });
      }
      this.known.set(id, next);
    });
  }

  async list(webhookId: string, limit: number): Promise<DeliveryRecord[]> {
    // Behind the writes queued so far: a record added before this call is in its answer.
    return this.writes.run(async () => (await this.read(checkedId(webhookId))).slice(0, limit));
  }

  async remove(webhookId: string): Promise<void> {
    const id = checkedId(webhookId);
    return this.writes.run(async () => {
      try {
        await fs.rm(this.file(id), { force: true });
      } catch (err) {
        throw new GatewayError('SERVICE_UNAVAILABLE', 'the webhook delivery records could not be removed', { cause: err });
      }
      this.known.delete(id);
    });
  }

  async close(): Promise<void> {
    await this.writes.idle();
  }

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  private async read(id: string): Promise<DeliveryRecord[]> {
    const cached = this.known.get(id);
    if (cached !== undefined) return cached;
    let text: string;
    try {
      text = await fs.readFile(this.file(id), 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw new GatewayError('SERVICE_UNAVAILABLE', 'the webhook delivery records could not be read', { cause: err });
    }
    // History, not configuration: a damaged file is started afresh rather than failing the deliveries.
    let records: DeliveryRecord[] = [];
    try {
      const data = JSON.parse(text) as { deliveries?: unknown };
      if (Array.isArray(data.deliveries)) records = data.deliveries.filter((r) => deliveryRecordProblem(r) === null) as DeliveryRecord[];
    } catch {
      records = [];
    }
    this.known.set(id, records);
    return records;
  }
}

export class RedisDeliveryRecords implements DeliveryRecords {
  private readonly kept: number;

  constructor(
    private readonly redis: Redis | Cluster,
    options: DeliveryRecordsOptions = {},
  ) {
    this.kept = options.kept ?? DELIVERY_RECORDS_KEPT;
  }

  async add(webhookId: string, record: DeliveryRecord): Promise<void> {
    const key = keys.webhookDeliveries(checkedId(webhookId));
    await this.call('write', async () => {
      const results = await this.redis.multi().lpush(key, JSON.stringify(record)).ltrim(key, 0, this.kept - 1).expire(key, REDIS_TTL_SECONDS).exec();
      const failed = results?.find(([err]) => err !== null)?.[0];
      if (results === null || failed) throw failed ?? new Error('MULTI was aborted');
    });
  }

  async list(webhookId: string, limit: number): Promise<DeliveryRecord[]> {
    const key = keys.webhookDeliveries(checkedId(webhookId));
    const texts = await this.call('read', () => this.redis.lrange(key, 0, Math.min(limit, this.kept) - 1));
    const records: DeliveryRecord[] = [];
    for (const text of texts) {
      try {
        const value: unknown = JSON.parse(text);
        if (deliveryRecordProblem(value) === null) records.push(value as DeliveryRecord);
      } catch {
        // A damaged entry is history lost, not a reason to hide the others.
      }
    }
    return records;
  }

  async remove(webhookId: string): Promise<void> {
    const key = keys.webhookDeliveries(checkedId(webhookId));
    await this.call('write', () => this.redis.del(key));
  }

  async close(): Promise<void> {
    // The client is shared and closed by its owner (app.ts).
  }

  private call<T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    return boundedStoreCall('webhook delivery records', kind, REDIS_TIMEOUT_MS, op);
  }
}
