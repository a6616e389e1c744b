/**
 * Account store for the embedded setup (no Redis): one JSON file, `<dataDir>/accounts.json`.
 *
 * - Reads are served from an in-memory copy loaded at open; the file is the durable copy.
 * - Every write replaces the whole file atomically: a uniquely named temp file in the same directory,
 *   fsynced, then rename(2) over the old file, then the directory fsynced. A crash leaves either the old
 *   or the new file, never a torn one.
 * - A crash between writing the temp file and the rename leaves the temp file behind (a full copy of the
 *   accounts, secrets sealed); open() removes such leftovers, which only this store writes.
 * - Writes are serialised through one promise chain, so concurrent creates in this process all land.
 *   The in-memory copy changes only after the file did, so a failed write changes nothing.
 * - One process per data directory: a second gateway on the same file would not see the first one's
 *   writes. Replicas share accounts through the Redis store instead.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { GatewayError } from '../errors.js';
import { SerialQueue } from '../util/serial-queue.js';
import { errnoCode, removeOrphanTempFiles, writeFileAtomic } from '../util/fs.js';
import {
  accountRecordProblem,
  compareById,
  pickAccountRecord,
  type AccountRecord,
  type AccountStore,
} from './types.js';

export const ACCOUNTS_FILE = 'accounts.json';
const FILE_VERSION = 1;

interface AccountsFile {
  version: typeof FILE_VERSION;
  accounts: AccountRecord[];
}

export class FileAccountStore implements AccountStore {
  readonly file: string;
  private records: Map<string, AccountRecord>;
  /** Writes land one after another, each on the file the one before left. */
  private readonly writes = new SerialQueue();
  private closed = false;

  private constructor(private readonly dataDir: string, records: Map<string, AccountRecord>) {
    this.file = path.join(dataDir, ACCOUNTS_FILE);
    this.records = records;
  }

  /**
   * Loads `<dataDir>/accounts.json` if it exists (nothing is created until the first write).
   * A file that is not valid JSON or holds a malformed record is an error naming the file: it is
   * never treated as empty, which would drop every account on the next write.
   */
  static async open(dataDir: string): Promise<FileAccountStore> {
    const file = path.join(dataDir, ACCOUNTS_FILE);
    let text: string | null;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') {
        throw new Error(`could not read account file ${file}: ${errnoCode(err) ?? String(err)}`, { cause: err });
      }
      text = null;
    }
    const records = text === null ? new Map<string, AccountRecord>() : parseAccountsFile(file, text);
    // One process per data directory, and no write of this store has started yet: every temp file is an orphan.
    await removeOrphanTempFiles(dataDir, ACCOUNTS_FILE);
    return new FileAccountStore(dataDir, records);
  }

  async get(id: string): Promise<AccountRecord | null> {
    const record = this.records.get(id);
    return record ? pickAccountRecord(record) : null;
  }

  async list(): Promise<AccountRecord[]> {
    return [...this.records.values()].sort(compareById).map(pickAccountRecord);
  }

  create(record: AccountRecord): Promise<void> {
    return this.mutate((draft) => {
      if (draft.has(record.id)) {
        throw new GatewayError('ACCOUNT_EXISTS', `account "${record.id}" already exists`);
      }
      draft.set(record.id, pickAccountRecord(record));
      return { changed: true, result: undefined };
    });
  }

  update(record: AccountRecord): Promise<void> {
    return this.mutate((draft) => {
      if (!draft.has(record.id)) {
        throw new GatewayError('ACCOUNT_NOT_FOUND', `account "${record.id}" does not exist`);
      }
      draft.set(record.id, pickAccountRecord(record));
      return { changed: true, result: undefined };
    });
  }

  updateIf(expected: AccountRecord, next: AccountRecord): Promise<boolean> {
    return this.mutate((draft) => {
      const stored = draft.get(next.id);
      if (stored === undefined || JSON.stringify(pickAccountRecord(stored)) !== JSON.stringify(pickAccountRecord(expected))) {
        return { changed: false, result: false };
      }
      draft.set(next.id, pickAccountRecord(next));
      return { changed: true, result: true };
    });
  }

  delete(id: string): Promise<boolean> {
    return this.mutate((draft) => {
      const removed = draft.delete(id);
      return { changed: removed, result: removed };
    });
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('account store is closed');
  }

  /** Waits for pending writes; later writes are refused. */
  async close(): Promise<void> {
    this.closed = true;
    await this.writes.idle();
  }

  /**
   * Runs `change` on a copy of the records, in turn with every other write of this store; persists
   * the copy when it changed and only then makes it current.
   */
  private mutate<T>(change: (draft: Map<string, AccountRecord>) => { changed: boolean; result: T }): Promise<T> {
    // Checked when the write is asked for: writes queued before close() still complete.
    if (this.closed) return Promise.reject(new Error('account store is closed'));
    const run = async (): Promise<T> => {
      const draft = new Map(this.records);
      const { changed, result } = change(draft);
      if (changed) {
        await this.persist(draft);
        this.records = draft;
      }
      return result;
    };
    return this.writes.run(run);
  }

  private async persist(records: Map<string, AccountRecord>): Promise<void> {
    const body: AccountsFile = { version: FILE_VERSION, accounts: [...records.values()].sort(compareById) };
    try {
      await writeFileAtomic(this.dataDir, this.file, `${JSON.stringify(body, null, 2)}\n`);
    } catch (err) {
      throw new GatewayError('SERVICE_UNAVAILABLE', 'the account store could not be written', { cause: err });
    }
  }
}

function parseAccountsFile(file: string, text: string): Map<string, AccountRecord> {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // The parser's message quotes the file's text, which holds sealed secrets: keep it out of logs.
    throw new Error(`account file ${file} is not valid JSON; restore it from a backup or move it away to start empty`);
  }
  const fail = (what: string): never => {
    throw new Error(`account file ${file} is corrupt: ${what}; restore it from a backup or move it away to start empty`);
  };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return fail('not a JSON object');
  const top = data as Record<string, unknown>;
  if (top.version !== FILE_VERSION) return fail(`unsupported version (expected ${FILE_VERSION})`);
  if (!Array.isArray(top.accounts)) return fail('"accounts" is not an array');
  const records = new Map<string, AccountRecord>();
  top.accounts.forEach((value: unknown, index: number) => {
    const problem = accountRecordProblem(value);
    if (problem) fail(`record #${index}: ${problem}`);
    const record = pickAccountRecord(value as AccountRecord);
    if (records.has(record.id)) fail(`record #${index}: duplicate id "${record.id}"`);
    records.set(record.id, record);
  });
  return records;
}
