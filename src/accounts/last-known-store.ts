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
 */
import type { Logger } from 'pino';
import { AccountStoreUnreachable } from './redis-store.js';
import type { AccountRecord, AccountStore } from './types.js';

export class LastKnownAccountStore implements AccountStore {
  private readonly known = new Map<string, AccountRecord>();
  private degraded = false;

  constructor(
    private readonly store: AccountStore,
    private readonly log: Logger,
    private readonly onFallback: () => void = () => undefined,
  ) {}

  /** 'degraded' while reads are answered from memory because the store is unreachable. */
  health(): 'ok' | 'degraded' {
    return this.degraded ? 'degraded' : 'ok';
  }

  async get(id: string): Promise<AccountRecord | null> {
    try {
      const record = await this.store.get(id);
      this.recovered();
      if (record === null) this.known.delete(id);
      else this.known.set(id, record);
      return record;
    } catch (err) {
      const remembered = this.known.get(id);
      if (!(err instanceof AccountStoreUnreachable) || remembered === undefined) throw err;
      if (!this.degraded) {
        this.degraded = true;
        this.log.warn('account store unreachable: serving accounts this process has read before');
      }
      this.onFallback();
      return remembered;
    }
  }

  async list(): Promise<AccountRecord[]> {
    const records = await this.store.list();
    this.recovered();
    return records;
  }

  async create(record: AccountRecord): Promise<void> {
    await this.store.create(record);
    this.known.set(record.id, record);
  }

  async update(record: AccountRecord): Promise<void> {
    await this.store.update(record);
    this.known.set(record.id, record);
  }

  async delete(id: string): Promise<boolean> {
    const deleted = await this.store.delete(id);
    this.known.delete(id);
    return deleted;
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
