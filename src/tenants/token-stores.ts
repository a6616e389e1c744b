/**
 * The two token stores, beside the account stores they follow: `tokens.json` under DATA_DIR (atomic
 * rewrites, one process per directory) or one Redis hash (`keys.tokens()`, field = the token's hash,
 * no TTL, single-key commands only, so Redis Cluster works). A Redis failure is a 503, never "no
 * such token" that is not known to be true.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { keys } from '../cache/keys.js';
import { UPDATE_IF_EXISTS, boundedStoreCall } from '../accounts/redis-store.js';
import { GatewayError } from '../errors.js';
import { SerialQueue } from '../util/serial-queue.js';
import { errnoCode, removeOrphanTempFiles, writeFileAtomic } from '../util/fs.js';
import { tokenRecordProblem, type TokenRecord, type TokenStore } from './tokens.js';

export const TOKENS_FILE = 'tokens.json';
const FILE_VERSION = 1;
const REDIS_TIMEOUT_MS = 5_000;

const byCreation = (a: TokenRecord, b: TokenRecord): number => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id);

export class FileTokenStore implements TokenStore {
  /** Writes land one after another, each on the file the one before left. */
  private readonly writes = new SerialQueue();

  private constructor(
    private readonly dataDir: string,
    private records: Map<string, TokenRecord>,
  ) {}

  static async open(dataDir: string): Promise<FileTokenStore> {
    const file = path.join(dataDir, TOKENS_FILE);
    await removeOrphanTempFiles(dataDir, TOKENS_FILE);
    let text: string | null = null;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw new Error(`could not read token file ${file}: ${errnoCode(err) ?? String(err)}`, { cause: err });
    }
    const records = new Map<string, TokenRecord>();
    if (text !== null) {
      const data = JSON.parse(text) as { version?: unknown; tokens?: unknown };
      if (data.version !== FILE_VERSION || !Array.isArray(data.tokens)) throw new Error(`token file ${file} is corrupt; restore it or move it away`);
      for (const value of data.tokens) {
        const problem = tokenRecordProblem(value);
        if (problem) throw new Error(`token file ${file} is corrupt: ${problem}`);
        records.set((value as TokenRecord).hash, value as TokenRecord);
      }
    }
    return new FileTokenStore(dataDir, records);
  }

  async create(record: TokenRecord): Promise<void> {
    await this.mutate((draft) => {
      draft.set(record.hash, record);
      return true;
    });
  }

  async findByHash(hash: string): Promise<TokenRecord | null> {
    return this.records.get(hash) ?? null;
  }

  async list(): Promise<TokenRecord[]> {
    return [...this.records.values()].sort(byCreation);
  }

  delete(id: string): Promise<boolean> {
    return this.mutate((draft) => {
      for (const [hash, record] of draft) if (record.id === id) return draft.delete(hash);
      return false;
    });
  }

  async touch(record: TokenRecord, lastUsedAt: string): Promise<void> {
    await this.mutate((draft) => {
      const current = draft.get(record.hash);
      if (current === undefined) return false;
      draft.set(record.hash, { ...current, lastUsedAt });
      return true;
    });
  }

  async close(): Promise<void> {
    await this.writes.idle();
  }

  /** Changes a copy; writes it; only then makes it current (a failed write changes nothing). */
  private mutate(change: (draft: Map<string, TokenRecord>) => boolean): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      const draft = new Map(this.records);
      const changed = change(draft);
      if (changed) {
        const body = { version: FILE_VERSION, tokens: [...draft.values()].sort(byCreation) };
        try {
          await writeFileAtomic(this.dataDir, path.join(this.dataDir, TOKENS_FILE), `${JSON.stringify(body, null, 2)}\n`);
        } catch (err) {
          throw new GatewayError('SERVICE_UNAVAILABLE', 'the token store could not be written', { cause: err });
        }
        this.records = draft;
      }
      return changed;
    };
    return this.writes.run(run);
  }
}

export class RedisTokenStore implements TokenStore {
  private readonly key = keys.tokens();

  constructor(private readonly redis: Redis | Cluster) {}

  async create(record: TokenRecord): Promise<void> {
    await this.call('write', () => this.redis.hset(this.key, record.hash, JSON.stringify(record)));
  }

  async findByHash(hash: string): Promise<TokenRecord | null> {
    const text = await this.call('read', () => this.redis.hget(this.key, hash));
    return text === null ? null : parse(text);
  }

  async list(): Promise<TokenRecord[]> {
    const all = await this.call('read', () => this.redis.hgetall(this.key));
    return Object.values(all).map(parse).sort(byCreation);
  }

  async delete(id: string): Promise<boolean> {
    const record = (await this.list()).find((r) => r.id === id);
    if (record === undefined) return false;
    return (await this.call('write', () => this.redis.hdel(this.key, record.hash))) > 0;
  }

  async touch(record: TokenRecord, lastUsedAt: string): Promise<void> {
    // Only while the token still exists: a touch must never resurrect a deleted token.
    await this.call('write', () => this.redis.eval(UPDATE_IF_EXISTS, 1, this.key, record.hash, JSON.stringify({ ...record, lastUsedAt })));
  }

  async close(): Promise<void> {
    // The client is shared and closed by its owner (app.ts).
  }

  private call<T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    return boundedStoreCall('token store', kind, REDIS_TIMEOUT_MS, op);
  }
}

function parse(text: string): TokenRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayError('SERVICE_UNAVAILABLE', 'a stored token record is not valid JSON; repair or remove it in Redis');
  }
  const problem = tokenRecordProblem(value);
  if (problem) throw new GatewayError('SERVICE_UNAVAILABLE', `a stored token record cannot be read (${problem})`);
  return value as TokenRecord;
}
