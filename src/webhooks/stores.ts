/**
 * The two webhook stores, beside the account and token stores they follow: `webhooks.json` under
 * DATA_DIR (atomic rewrites, one process per directory) or one Redis hash (`keys.webhooks()`, field =
 * webhook id, no TTL). A Redis failure is a 503, never "no such webhook" that is not known to be true.
 *
 * How other processes learn that webhooks changed: every write also INCRs `keys.webhooksVersion()`,
 * in the same script or MULTI (the two keys share the `{webhooks}` hash tag, so this holds on Redis
 * Cluster too). A reader polls `version()` (one GET) on an interval and re-reads the hash when it
 * moved. A counter rather than pub/sub: a message published while a reader was reconnecting is lost,
 * a counter is not; and a reader that starts late needs no history, only the current number. The file
 * store's version counts its own writes: it is the only writer of its directory.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { keys } from '../cache/keys.js';
import { boundedStoreCall } from '../accounts/redis-store.js';
import { GatewayError } from '../errors.js';
import { SerialQueue } from '../util/serial-queue.js';
import { errnoCode, removeOrphanTempFiles, writeFileAtomic } from '../util/fs.js';
import { webhookRecordProblem, type WebhookRecord, type WebhookStore } from './types.js';

export const WEBHOOKS_FILE = 'webhooks.json';
const FILE_VERSION = 1;
const REDIS_TIMEOUT_MS = 5_000;
/**
 * Compare-and-set rounds before an update gives up. Each lost round means another write landed, so
 * some writer always progresses; a short random pause after a loss keeps many writers of one record
 * (rare: an admin and the dispatcher) from colliding again in step.
 */
const UPDATE_ATTEMPTS = 50;
const UPDATE_BACKOFF_MAX_MS = 50;

const byCreation = (a: WebhookRecord, b: WebhookRecord): number => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);

export class FileWebhookStore implements WebhookStore {
  /** Writes land one after another, each on the file the one before left. */
  private readonly writes = new SerialQueue();
  private writeCount = 0;

  private constructor(
    private readonly dataDir: string,
    private records: Map<string, WebhookRecord>,
  ) {}

  static async open(dataDir: string): Promise<FileWebhookStore> {
    const file = path.join(dataDir, WEBHOOKS_FILE);
    await removeOrphanTempFiles(dataDir, WEBHOOKS_FILE);
    let text: string | null = null;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw new Error(`could not read webhook file ${file}: ${errnoCode(err) ?? String(err)}`, { cause: err });
    }
    const records = new Map<string, WebhookRecord>();
    if (text !== null) {
      let data: { version?: unknown; webhooks?: unknown };
      try {
        data = JSON.parse(text) as typeof data;
      } catch (err) {
        throw new Error(`webhook file ${file} is not valid JSON; restore it or move it away`, { cause: err });
      }
      if (data.version !== FILE_VERSION || !Array.isArray(data.webhooks)) throw new Error(`webhook file ${file} is corrupt; restore it or move it away`);
      for (const value of data.webhooks) {
        const problem = webhookRecordProblem(value);
        if (problem) throw new Error(`webhook file ${file} is corrupt: ${problem}`);
        records.set((value as WebhookRecord).id, value as WebhookRecord);
      }
    }
    return new FileWebhookStore(dataDir, records);
  }

  async create(record: WebhookRecord): Promise<void> {
    await this.mutate((draft) => {
      draft.set(record.id, record);
      return true;
    });
  }

  async list(): Promise<WebhookRecord[]> {
    return [...this.records.values()].sort(byCreation);
  }

  async get(id: string): Promise<WebhookRecord | null> {
    return this.records.get(id) ?? null;
  }

  async update(id: string, change: (current: WebhookRecord) => WebhookRecord): Promise<WebhookRecord | null> {
    let next: WebhookRecord | null = null;
    // The change runs inside the write queue, on the record as the writes before it left it.
    await this.mutate((draft) => {
      const current = draft.get(id);
      if (current === undefined) return false;
      next = change(current);
      draft.set(id, next);
      return true;
    });
    return next;
  }

  delete(id: string): Promise<boolean> {
    return this.mutate((draft) => draft.delete(id));
  }

  async version(): Promise<number> {
    return this.writeCount;
  }

  async close(): Promise<void> {
    await this.writes.idle();
  }

  /** Changes a copy; writes it; only then makes it current (a failed write changes nothing). */
  private mutate(change: (draft: Map<string, WebhookRecord>) => boolean): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      const draft = new Map(this.records);
      const changed = change(draft);
      if (changed) {
        const body = { version: FILE_VERSION, webhooks: [...draft.values()].sort(byCreation) };
        try {
          await writeFileAtomic(this.dataDir, path.join(this.dataDir, WEBHOOKS_FILE), `${JSON.stringify(body, null, 2)}\n`);
        } catch (err) {
          throw new GatewayError('SERVICE_UNAVAILABLE', 'the webhook store could not be written', { cause: err });
        }
        this.records = draft;
        this.writeCount += 1;
      }
      return changed;
    };
    return this.writes.run(run);
  }
}

/**
 * Replaces a webhook's record only while it is still the text the caller read (compare-and-set),
 * and moves the version. 1: replaced; 0: another write came first (read again); -1: no such webhook.
 */
const REPLACE_IF_UNCHANGED = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return -1 end
if current ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1`;

/** Deletes a webhook's record and, when there was one, moves the version. */
const DELETE_AND_COUNT = `
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
if removed == 1 then redis.call('INCR', KEYS[2]) end
return removed`;

/** Stores a new webhook's record and moves the version. */
const CREATE_AND_COUNT = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1`;

export class RedisWebhookStore implements WebhookStore {
  private readonly key = keys.webhooks();
  private readonly versionKey = keys.webhooksVersion();

  constructor(private readonly redis: Redis | Cluster) {}

  async create(record: WebhookRecord): Promise<void> {
    await this.call('write', () => this.redis.eval(CREATE_AND_COUNT, 2, this.key, this.versionKey, record.id, JSON.stringify(record)));
  }

  async list(): Promise<WebhookRecord[]> {
    const all = await this.call('read', () => this.redis.hgetall(this.key));
    return Object.values(all).map(parse).sort(byCreation);
  }

  async get(id: string): Promise<WebhookRecord | null> {
    const text = await this.call('read', () => this.redis.hget(this.key, id));
    return text === null ? null : parse(text);
  }

  async update(id: string, change: (current: WebhookRecord) => WebhookRecord): Promise<WebhookRecord | null> {
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const text = await this.call('read', () => this.redis.hget(this.key, id));
      if (text === null) return null;
      const next = change(parse(text));
      const outcome = await this.call('write', () =>
        this.redis.eval(REPLACE_IF_UNCHANGED, 2, this.key, this.versionKey, id, text, JSON.stringify(next)),
      );
      if (outcome === 1) return next;
      if (outcome === -1) return null;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(UPDATE_BACKOFF_MAX_MS, 2 ** attempt)));
    }
    throw new GatewayError('SERVICE_UNAVAILABLE', `the webhook ${id} kept changing while it was being updated; retry`, { retryAfterSeconds: 1 });
  }

  async delete(id: string): Promise<boolean> {
    return (await this.call('write', () => this.redis.eval(DELETE_AND_COUNT, 2, this.key, this.versionKey, id))) === 1;
  }

  async version(): Promise<number> {
    const text = await this.call('read', () => this.redis.get(this.versionKey));
    return text === null ? 0 : Number(text);
  }

  async close(): Promise<void> {
    // The client is shared and closed by its owner (app.ts).
  }

  private call<T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    return boundedStoreCall('webhook store', kind, REDIS_TIMEOUT_MS, op);
  }
}

function parse(text: string): WebhookRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayError('SERVICE_UNAVAILABLE', 'a stored webhook record is not valid JSON; repair or remove it in Redis');
  }
  const problem = webhookRecordProblem(value);
  if (problem) throw new GatewayError('SERVICE_UNAVAILABLE', `a stored webhook record cannot be read (${problem})`);
  return value as WebhookRecord;
}
