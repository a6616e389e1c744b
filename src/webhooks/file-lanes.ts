/**
 * Delivery lanes without Redis (one process): the event log under DATA_DIR is the queue, and each
 * lane is a cursor (the newest event id settled) plus its head's retry state, all in
 * `webhook-lanes.json`, rewritten atomically (write, fsync, rename: src/util/fs.ts) before a settle
 * or a retry state is reported done. A `kill -9` mid-delivery leaves the cursor before the event,
 * so it is sent again after the restart (at least once).
 *
 * Writes that arrive while one is in progress are folded into the next one: a burst of settles costs
 * two rewrites, not one per event.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { EventLog } from '../events/types.js';
import { compareEventIds } from '../events/log/event-id.js';
import { errnoCode, removeOrphanTempFiles, writeFileAtomic } from '../util/fs.js';
import type { DeliveryLanes, LaneEntry, LaneKey, RetryState } from './lanes.js';
import { parseRetryState } from './redis-lanes.js';

export const LANES_FILE = 'webhook-lanes.json';
const FILE_VERSION = 1;

interface LaneRecord {
  settled?: string;
  retry?: RetryState;
}

export class FileDeliveryLanes implements DeliveryLanes {
  /** A write is running; `queued` says another must follow it (a change came in meanwhile). */
  private writing: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  private constructor(
    private readonly dataDir: string,
    private readonly log: EventLog,
    /** webhook id → account id → lane. */
    private readonly lanes: Map<string, Map<string, LaneRecord>>,
  ) {}

  static async open(dataDir: string, log: EventLog): Promise<FileDeliveryLanes> {
    const file = path.join(dataDir, LANES_FILE);
    await removeOrphanTempFiles(dataDir, LANES_FILE);
    const lanes = new Map<string, Map<string, LaneRecord>>();
    let text: string | null = null;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw new Error(`could not read ${file}: ${errnoCode(err) ?? String(err)}`, { cause: err });
    }
    if (text !== null) {
      const data = JSON.parse(text) as { version?: unknown; lanes?: unknown };
      if (data.version !== FILE_VERSION || typeof data.lanes !== 'object' || data.lanes === null) {
        throw new Error(`webhook lane file ${file} is corrupt; restore it or move it away`);
      }
      for (const [webhookId, accounts] of Object.entries(data.lanes as Record<string, Record<string, LaneRecord>>)) {
        const byAccount = new Map<string, LaneRecord>();
        for (const [accountId, record] of Object.entries(accounts)) {
          const retry = record.retry === undefined ? null : parseRetryState(JSON.stringify(record.retry));
          byAccount.set(accountId, {
            ...(typeof record.settled === 'string' ? { settled: record.settled } : {}),
            ...(retry ? { retry } : {}),
          });
        }
        lanes.set(webhookId, byAccount);
      }
    }
    return new FileDeliveryLanes(dataDir, log, lanes);
  }

  async pending(lane: LaneKey, startId: string, limit: number): Promise<LaneEntry[]> {
    const settled = this.record(lane)?.settled;
    const after = settled !== undefined && compareEventIds(settled, startId) > 0 ? settled : startId;
    const { events } = await this.log.readAfter(lane.accountId, after, limit);
    return events.map((event) => ({ id: event.id, event }));
  }

  async settle(lane: LaneKey, eventIds: string[]): Promise<void> {
    if (eventIds.length === 0) return;
    const newest = eventIds.reduce((a, b) => (compareEventIds(a, b) >= 0 ? a : b));
    const record = this.recordFor(lane);
    if (record.settled === undefined || compareEventIds(newest, record.settled) > 0) record.settled = newest;
    if (record.retry !== undefined && eventIds.includes(record.retry.eventId)) delete record.retry;
    await this.persist();
  }

  async retryState(lane: LaneKey): Promise<RetryState | null> {
    return this.record(lane)?.retry ?? null;
  }

  async saveRetryState(lane: LaneKey, state: RetryState): Promise<void> {
    this.recordFor(lane).retry = { ...state };
    await this.persist();
  }

  async dropWebhook(webhookId: string): Promise<void> {
    if (!this.lanes.delete(webhookId)) return;
    await this.persist();
  }

  async dropAccount(accountId: string): Promise<void> {
    let dropped = false;
    for (const byAccount of this.lanes.values()) dropped = byAccount.delete(accountId) || dropped;
    if (dropped) await this.persist();
  }

  async close(): Promise<void> {
    await this.queued;
    await this.writing;
  }

  private record(lane: LaneKey): LaneRecord | undefined {
    return this.lanes.get(lane.webhookId)?.get(lane.accountId);
  }

  private recordFor(lane: LaneKey): LaneRecord {
    let byAccount = this.lanes.get(lane.webhookId);
    if (byAccount === undefined) this.lanes.set(lane.webhookId, (byAccount = new Map()));
    let record = byAccount.get(lane.accountId);
    if (record === undefined) byAccount.set(lane.accountId, (record = {}));
    return record;
  }

  /** Resolves once a write that began after this call has landed (it carries every change made so far). */
  private persist(): Promise<void> {
    if (this.queued) return this.queued;
    if (this.writing === null) return (this.writing = this.write().finally(() => (this.writing = null)));
    const after = this.writing;
    this.queued = after
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return (this.writing = this.write().finally(() => (this.writing = null)));
      });
    return this.queued;
  }

  private async write(): Promise<void> {
    const lanes: Record<string, Record<string, LaneRecord>> = {};
    for (const [webhookId, byAccount] of this.lanes) lanes[webhookId] = Object.fromEntries(byAccount);
    await writeFileAtomic(this.dataDir, path.join(this.dataDir, LANES_FILE), `${JSON.stringify({ version: FILE_VERSION, lanes })}\n`);
  }
}
