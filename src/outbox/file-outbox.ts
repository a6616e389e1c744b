/**
 * The outbox without Redis: files under `DATA_DIR/outbox/`, one process per directory (like every
 * embedded store). Each entry is `entries/<queueId>.json` (the entry, and its Idempotency-Key hash
 * with its expiry), its bytes `raw/<queueId>.eml`; both written atomically (write, fsync, rename),
 * the bytes first, so an entry on disk always has its bytes until it is final (a large message's
 * bytes are written as they are composed into `raw/<queueId>.eml.staged`, synced and renamed when
 * queued; one left by a process that died is removed at open). The queue is the set
 * of entries not yet finished (final, and their copy, flag and event dealt with), read back at open:
 * a gateway killed mid-send goes on where the entry says after it starts again.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Readable } from 'node:stream';
import { errnoCode, syncDir, writeFileAtomic } from '../util/fs.js';
import { SerialQueue } from '../util/serial-queue.js';
import { outboxEntryProblem } from './entry-shape.js';
import { FINAL_STATUSES, type IdempotencyClaim, type OutboxEntry, type OutboxJob, type OutboxQueue, type OutboxStore, type QueuedRaw, type RawStaging, type SendReceipt } from './types.js';

const QUEUE_ID = /^q_[A-Za-z0-9_-]{8,64}$/;
/** A large message's bytes while they are written, before the entry exists (removed at the next start if it never does). */
const STAGED_SUFFIX = '.staged';

interface StoredEntry {
  entry: OutboxEntry;
  idempotency?: { keyHash: string; expiresAtMs: number };
  /** Set once final: when the entry may be forgotten. */
  keepUntilMs?: number;
}

export class FileOutbox implements OutboxStore, OutboxQueue {
  private readonly entries = new Map<string, StoredEntry>();
  private readonly writes = new SerialQueue();
  private handler: ((job: OutboxJob & { lost: AbortSignal }) => Promise<void>) | undefined;
  private readonly handed = new Set<string>();
  private capacity: () => number = () => 1;
  /** Bytes being staged, by queue id, until queued or discarded. */
  private readonly stagings = new Map<string, RawStaging & { keep(): Promise<void> }>();
  private readonly never = new AbortController().signal;
  private pruneTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  static async open(dataDir: string, log: Logger): Promise<FileOutbox> {
    const outbox = new FileOutbox(path.join(dataDir, 'outbox'), log);
    await outbox.load();
    return outbox;
  }

  private get entriesDir(): string {
    return path.join(this.dir, 'entries');
  }

  private get rawDir(): string {
    return path.join(this.dir, 'raw');
  }

  private async load(): Promise<void> {
    await fs.mkdir(this.entriesDir, { recursive: true, mode: 0o700 });
    await fs.mkdir(this.rawDir, { recursive: true, mode: 0o700 });
    for (const dir of [this.entriesDir, this.rawDir]) {
      // What writeFileAtomic leaves when the process died between writing and renaming.
      for (const name of await fs.readdir(dir)) if (name.startsWith('.') && name.endsWith('.tmp')) await fs.rm(path.join(dir, name), { force: true });
    }
    for (const name of await fs.readdir(this.entriesDir)) {
      if (!name.endsWith('.json')) continue;
      const queueId = name.slice(0, -'.json'.length);
      try {
        const stored = JSON.parse(await fs.readFile(path.join(this.entriesDir, name), 'utf8')) as StoredEntry;
        const problem = outboxEntryProblem(stored.entry);
        if (problem !== null || stored.entry.queueId !== queueId) {
          this.log.warn({ queueId, problem }, 'an outbox entry under DATA_DIR cannot be read; it is skipped');
          continue;
        }
        this.entries.set(queueId, stored);
      } catch (err) {
        this.log.warn({ queueId, err: { message: (err as Error).message } }, 'an outbox entry under DATA_DIR cannot be read; it is skipped');
      }
    }
    // Bytes whose entry was never written (a crash between the two writes) were never queued.
    for (const name of await fs.readdir(this.rawDir)) {
      const queueId = name.endsWith('.eml') ? name.slice(0, -'.eml'.length) : null;
      if (queueId === null || !this.entries.has(queueId)) await fs.rm(path.join(this.rawDir, name), { force: true });
    }
    await this.prune();
  }

  async enqueue(entry: OutboxEntry, raw: QueuedRaw, idempotency?: IdempotencyClaim): Promise<{ receipt: SendReceipt; replayed: boolean }> {
    checkQueueId(entry.queueId);
    return this.writes.run(async () => {
      const earlier = idempotency ? await this.replay(idempotency) : null;
      if (earlier !== null) {
        if (raw.kind === 'staged') await this.stagings.get(entry.queueId)?.discard();
        return { receipt: earlier, replayed: true };
      }
      if (raw.kind === 'memory') await writeFileAtomic(this.rawDir, this.rawFile(entry.queueId), raw.bytes);
      else await this.keepStaged(entry.queueId);
      // With room, the entry is begun as it is stored and handed over with its bytes (see OutboxJob.begun).
      const claim = this.handler !== undefined && this.capacity() > 0;
      const stored: StoredEntry = {
        entry: claim ? { ...entry, status: 'sending', attempts: entry.attempts + 1 } : entry,
        ...(idempotency ? { idempotency: { keyHash: idempotency.keyHash, expiresAtMs: Date.now() + idempotency.ttlMs } } : {}),
      };
      await this.writeEntry(stored);
      this.entries.set(entry.queueId, stored);
      this.hand(entry.queueId, claim ? { entry: structuredClone(stored.entry), raw: raw.kind === 'memory' ? raw.bytes : (raw.held ?? null) } : undefined);
      return { receipt: { queueId: entry.queueId, messageId: entry.messageId }, replayed: false };
    });
  }

  stage(queueId: string): RawStaging {
    checkQueueId(queueId);
    const file = `${this.rawFile(queueId)}${STAGED_SUFFIX}`;
    let handle: fs.FileHandle | undefined;
    // Appends may come before the earlier ones finished: they are written one after another, in order.
    let written: Promise<unknown> = Promise.resolve();
    const staging: RawStaging & { keep(): Promise<void> } = {
      holdWhenNeeded: false,
      append: (chunk) => {
        const next = written.then(async () => {
          handle ??= await fs.open(file, 'w', 0o600);
          await handle.write(chunk);
        });
        written = next.catch(() => undefined);
        return next;
      },
      discard: async () => {
        this.stagings.delete(queueId);
        await written;
        await handle?.close().catch(() => undefined);
        await fs.rm(file, { force: true });
      },
      // Durable before the entry that names it: written, synced, renamed (as writeFileAtomic does).
      keep: async () => {
        this.stagings.delete(queueId);
        await written;
        if (handle === undefined) throw new Error(`outbox entry ${queueId} has no staged bytes`);
        await handle.sync();
        await handle.close();
        await fs.rename(file, this.rawFile(queueId));
        await syncDir(this.rawDir);
      },
    };
    this.stagings.set(queueId, staging);
    return staging;
  }

  private async keepStaged(queueId: string): Promise<void> {
    const staging = this.stagings.get(queueId);
    if (staging === undefined) throw new Error(`outbox entry ${queueId} has no staged bytes`);
    await staging.keep();
  }

  async replay(idempotency: IdempotencyClaim): Promise<SendReceipt | null> {
    const now = Date.now();
    for (const stored of this.entries.values()) {
      if (stored.idempotency?.keyHash === idempotency.keyHash && stored.idempotency.expiresAtMs > now) {
        return { queueId: stored.entry.queueId, messageId: stored.entry.messageId };
      }
    }
    return null;
  }

  async get(account: string, queueId: string): Promise<OutboxEntry | null> {
    const stored = this.entries.get(queueId);
    return stored !== undefined && stored.entry.account === account ? structuredClone(stored.entry) : null;
  }

  async peek(queueId: string): Promise<OutboxEntry | null> {
    const stored = this.entries.get(queueId);
    return stored === undefined ? null : structuredClone(stored.entry);
  }

  async list(account: string): Promise<OutboxEntry[]> {
    return [...this.entries.values()]
      .filter((stored) => stored.entry.account === account)
      .map((stored) => structuredClone(stored.entry))
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.queueId < b.queueId ? 1 : -1));
  }

  async raw(queueId: string): Promise<Buffer | null> {
    checkQueueId(queueId);
    try {
      return await fs.readFile(this.rawFile(queueId));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw err;
    }
  }

  async rawStream(queueId: string): Promise<Readable | null> {
    checkQueueId(queueId);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.rawFile(queueId), 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw err;
    }
    return handle.createReadStream({ highWaterMark: 256 * 1024 });
  }

  async begin(queueId: string): Promise<OutboxEntry | null> {
    return this.writes.run(async () => {
      const stored = this.entries.get(queueId);
      if (stored === undefined || !['queued', 'retrying', 'sending'].includes(stored.entry.status)) return null;
      const entry = { ...stored.entry, status: 'sending' as const, attempts: stored.entry.attempts + 1, updatedAt: new Date().toISOString() };
      await this.writeEntry({ ...stored, entry });
      stored.entry = entry;
      return structuredClone(entry);
    });
  }

  async save(entry: OutboxEntry): Promise<void> {
    await this.writes.run(async () => {
      const stored = this.entries.get(entry.queueId);
      if (stored === undefined) return;
      await this.writeEntry({ ...stored, entry });
      stored.entry = structuredClone(entry);
    });
  }

  async finish(entry: OutboxEntry, keepMs: number): Promise<void> {
    await this.writes.run(async () => {
      const stored = this.entries.get(entry.queueId);
      if (stored === undefined) return;
      const next: StoredEntry = { ...stored, entry: structuredClone(entry), keepUntilMs: Date.now() + keepMs };
      await this.writeEntry(next);
      this.entries.set(entry.queueId, next);
      await fs.rm(this.rawFile(entry.queueId), { force: true });
    });
  }

  async cancel(account: string, queueId: string, keepMs: number): Promise<{ outcome: 'cancelled' | 'final' | 'missing'; entry: OutboxEntry | null }> {
    return this.writes.run(async () => {
      const stored = this.entries.get(queueId);
      if (stored === undefined || stored.entry.account !== account) return { outcome: 'missing' as const, entry: null };
      if (stored.entry.status !== 'queued' && stored.entry.status !== 'retrying') {
        return { outcome: 'final' as const, entry: structuredClone(stored.entry) };
      }
      const entry: OutboxEntry = { ...stored.entry, status: 'cancelled', nextAttemptAt: null, updatedAt: new Date().toISOString() };
      const next: StoredEntry = { ...stored, entry, keepUntilMs: Date.now() + keepMs };
      await this.writeEntry(next);
      this.entries.set(queueId, next);
      await fs.rm(this.rawFile(queueId), { force: true });
      return { outcome: 'cancelled' as const, entry: structuredClone(entry) };
    });
  }

  async depth(): Promise<number> {
    let waiting = 0;
    for (const stored of this.entries.values()) if (!FINAL_STATUSES.has(stored.entry.status)) waiting += 1;
    return waiting;
  }

  async dropAccount(account: string): Promise<void> {
    await this.writes.run(async () => {
      for (const [queueId, stored] of this.entries) {
        if (stored.entry.account !== account) continue;
        this.entries.delete(queueId);
        await fs.rm(this.entryFile(queueId), { force: true });
        await fs.rm(this.rawFile(queueId), { force: true });
      }
    });
  }

  async ping(): Promise<void> {
    await fs.access(this.entriesDir);
  }

  /** Every entry is handed over at once: the worker's own limit bounds how many are sent at a time. */
  start(handler: (job: OutboxJob & { lost: AbortSignal }) => Promise<void>, capacity?: () => number): void {
    this.handler = handler;
    if (capacity) this.capacity = capacity;
    // Every entry not finished: those not final, and final ones whose copy, flag or event were still to come.
    for (const [queueId, stored] of this.entries) if (stored.keepUntilMs === undefined) this.hand(queueId);
    this.pruneTimer = setInterval(() => void this.prune().catch(() => undefined), 3_600_000);
    this.pruneTimer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    this.handler = undefined;
    await this.writes.idle();
  }

  private hand(queueId: string, begun?: OutboxJob['begun']): void {
    if (this.handler === undefined || this.handed.has(queueId)) return;
    this.handed.add(queueId);
    const job = { queueId, ...(begun && { begun }), lost: this.never, done: async () => void this.handed.delete(queueId) };
    this.handler(job).catch((err: unknown) => {
      this.handed.delete(queueId);
      this.log.warn({ queueId, err: { message: (err as Error).message } }, 'outbox job failed; it is tried again at the next start');
    });
  }

  /** Forgets final entries past their keep time (never before their Idempotency-Key expires). */
  private async prune(): Promise<void> {
    await this.writes.run(async () => {
      const now = Date.now();
      for (const [queueId, stored] of this.entries) {
        if (stored.keepUntilMs === undefined || stored.keepUntilMs > now) continue;
        if (stored.idempotency !== undefined && stored.idempotency.expiresAtMs > now) continue;
        this.entries.delete(queueId);
        await fs.rm(this.entryFile(queueId), { force: true });
        await fs.rm(this.rawFile(queueId), { force: true });
      }
    });
  }

  private async writeEntry(stored: StoredEntry): Promise<void> {
    await writeFileAtomic(this.entriesDir, this.entryFile(stored.entry.queueId), `${JSON.stringify(stored)}\n`);
  }

  private entryFile(queueId: string): string {
    return path.join(this.entriesDir, `${queueId}.json`);
  }

  private rawFile(queueId: string): string {
    return path.join(this.rawDir, `${queueId}.eml`);
  }
}

/** Queue ids become file names: only the gateway's own shape is accepted. */
function checkQueueId(queueId: string): void {
  if (!QUEUE_ID.test(queueId)) throw new Error(`not an outbox queue id: ${JSON.stringify(queueId)}`);
}
