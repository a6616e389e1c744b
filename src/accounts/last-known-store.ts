/**
 * Keeps mail flowing through a Redis outage (issue: "Redis failure degrades, never fails").
 *
 * Every account record read from the store is remembered in this process. While the store cannot
 * be reached, a request for an account this process has read before is served with that record;
 * one it has never read, a listing of all accounts and every write still answer 503. A record that
 * Redis returns but that cannot be parsed is never replaced by a remembered one: that is damage,
 * not an outage, and answers 503.
 *
 * The remembered record can only be older than the store's if another process changed the account
 * after this one last read it and before Redis went away; connection changes then surface as a
 * refused login, not as another account's mail.
 *
 * A record read less than `freshForMs` ago is answered without asking the store again, and
 * concurrent reads of one account share one store read: a busy account costs one Redis round trip
 * per `freshForMs`, not one per request. Changes made through this process are seen at once; a
 * change or deletion made through another process is seen here within `freshForMs`
 * (docs/decisions/0008-cached-listings-and-account-records-across-processes.md).
 */
import type { Logger } from 'pino';
import { AccountStoreUnreachable } from './redis-store.js';
import type { AccountRecord, AccountStore } from './types.js';

export interface LastKnownAccountStoreOptions {
  log: Logger;
  /** How long a record read from the store is used without reading it again; 0: every time. */
  freshForMs?: number;
  onFallback?: () => void;
  now?: () => number;
}

export class LastKnownAccountStore implements AccountStore {
  private readonly known = new Map<string, { record: AccountRecord; readAtMs: number }>();
  private readonly reading = new Map<string, Promise<AccountRecord | null>>();
  private degraded = false;
  /** Writes through this process, by account: a read that overlapped one must not store what it read. */
  private readonly writes = new Map<string, number>();
  private readonly log: Logger;
  private readonly freshForMs: number;
  private readonly onFallback: () => void;
  private readonly now: () => number;

  constructor(
    private readonly store: AccountStore,
    options: LastKnownAccountStoreOptions,
  ) {
    this.log = options.log;
    this.freshForMs = options.freshForMs ?? 0;
    this.onFallback = options.onFallback ?? (() => undefined);
    this.now = options.now ?? Date.now;
  }

  /** 'degraded' while reads are answered from memory because the store is unreachable. */
  health(): 'ok' | 'degraded' {
    return this.degraded ? 'degraded' : 'ok';
  }

  async get(id: string): Promise<AccountRecord | null> {
    const known = this.known.get(id);
    if (known !== undefined && this.now() - known.readAtMs < this.freshForMs) return known.record;
    let read = this.reading.get(id);
    if (read === undefined) {
      const started: Promise<AccountRecord | null> = this.read(id).finally(() => {
        if (this.reading.get(id) === started) this.reading.delete(id);
      });
      read = started;
      this.reading.set(id, read);
    }
    return read;
  }

  private async read(id: string): Promise<AccountRecord | null> {
    const readAtMs = this.now();
    const writesBefore = this.writes.get(id) ?? 0;
    try {
      const record = await this.store.get(id);
      this.recovered();
      if ((this.writes.get(id) ?? 0) !== writesBefore) return record;
      if (record === null) this.known.delete(id);
      else this.known.set(id, { record, readAtMs });
      return record;
    } catch (err) {
      const remembered = this.known.get(id);
      if (!(err instanceof AccountStoreUnreachable) || remembered === undefined) throw err;
      if (!this.degraded) {
        this.degraded = true;
        this.log.warn('account store unreachable: serving accounts this process has read before');
      }
      this.onFallback();
      return remembered.record;
    }
  }

  async list(): Promise<AccountRecord[]> {
    const records = await this.store.list();
    this.recovered();
    return records;
  }

  async create(record: AccountRecord): Promise<void> {
    await this.store.create(record);
    this.wrote(record.id, record);
  }

  async update(record: AccountRecord): Promise<void> {
    await this.store.update(record);
    this.wrote(record.id, record);
  }

  async updateIf(expected: AccountRecord, next: AccountRecord): Promise<boolean> {
    const updated = await this.store.updateIf(expected, next);
    // Refused: the remembered record is older than the store's, so the next read asks the store.
    if (updated) this.wrote(next.id, next);
    else this.forget(next.id);
    return updated;
  }

  async delete(id: string): Promise<boolean> {
    const deleted = await this.store.delete(id);
    this.wrote(id, null);
    return deleted;
  }

  /**
   * Another process changed the account: the next read asks the store. The record is still kept
   * for a Redis outage (see above), and a read already under way is not stored over the news.
   */
  forget(id: string): void {
    this.writes.set(id, (this.writes.get(id) ?? 0) + 1);
    this.reading.delete(id);
    const known = this.known.get(id);
    if (known !== undefined) this.known.set(id, { record: known.record, readAtMs: Number.NEGATIVE_INFINITY });
  }

  /** What this process just wrote is what it reads next; a read already under way predates it. */
  private wrote(id: string, record: AccountRecord | null): void {
    this.writes.set(id, (this.writes.get(id) ?? 0) + 1);
    this.reading.delete(id);
    if (record === null) this.known.delete(id);
    else this.known.set(id, { record, readAtMs: this.now() });
  }

  async ping(): Promise<void> {
    await this.store.ping();
    this.recovered();
  }

  async close(): Promise<void> {
    this.known.clear();
    await this.store.close();
  }

  private recovered(): void {
    if (!this.degraded) return;
    this.degraded = false;
    this.log.warn('account store reachable again');
  }
}
