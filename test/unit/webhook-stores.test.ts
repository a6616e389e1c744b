/**
 * The file-mode webhook store and delivery records (webhooks/stores.ts, webhooks/delivery-records.ts)
 * on a real temporary directory: what survives a restart, what an update may not lose, the bound.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileDeliveryRecords } from '../../src/webhooks/delivery-records.js';
import { FileWebhookStore, WEBHOOKS_FILE } from '../../src/webhooks/stores.js';
import { newWebhookId } from '../../src/webhooks/types.js';
import { rejection } from '../support/assertions.js';
import { deliveryAttempt as attempt, webhookRecord } from '../support/webhook-records.js';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'mailgw-webhooks-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('FileWebhookStore', () => {
  it('keeps every write across reopening, oldest first', async () => {
    const store = await FileWebhookStore.open(dataDir);
    const first = webhookRecord({ createdAt: '2026-01-01T00:00:00.000Z', description: 'first' });
    const second = webhookRecord({ createdAt: '2026-01-02T00:00:00.000Z', accounts: ['alice'] });
    const third = webhookRecord({ createdAt: '2026-01-03T00:00:00.000Z' });
    await store.create(second);
    await store.create(first);
    await store.create(third);
    await store.update(second.id, (current) => ({ ...current, enabled: false, disabledReason: 'the receiver answered 410 Gone' }));
    expect(await store.delete(third.id)).toBe(true);
    await store.close();

    const reopened = await FileWebhookStore.open(dataDir);
    expect(await reopened.list()).toEqual([first, { ...second, enabled: false, disabledReason: 'the receiver answered 410 Gone' }]);
    expect(await reopened.get(third.id)).toBeNull();
    expect(await reopened.get(first.id)).toEqual(first);
  });

  it('never creates on update or delete of an unknown id, and counts only real writes in its version', async () => {
    const store = await FileWebhookStore.open(dataDir);
    expect(await store.version()).toBe(0);
    expect(await store.update('wh_nobody', (c) => ({ ...c, enabled: false }))).toBeNull();
    expect(await store.delete('wh_nobody')).toBe(false);
    expect(await store.list()).toEqual([]);
    expect(await store.version()).toBe(0);
    const record = webhookRecord();
    await store.create(record);
    await store.update(record.id, (c) => ({ ...c, description: 'x' }));
    await store.delete(record.id);
    expect(await store.version()).toBe(3);
  });

  it('runs concurrent updates one after another, each on the record the one before left', async () => {
    const store = await FileWebhookStore.open(dataDir);
    const record = webhookRecord({ accounts: [] });
    await store.create(record);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.update(record.id, (c) => ({ ...c, accounts: [...c.accounts, `a${i}`] }))));
    expect((await store.get(record.id))?.accounts).toHaveLength(20);
  });

  it('refuses to start on a corrupt file rather than losing its webhooks', async () => {
    await writeFile(path.join(dataDir, WEBHOOKS_FILE), JSON.stringify({ version: 1, webhooks: [{ id: 'wh_x', url: 'https://1.1.1.1/' }] }));
    await expect(FileWebhookStore.open(dataDir)).rejects.toThrow(/corrupt/);
    await writeFile(path.join(dataDir, WEBHOOKS_FILE), '{"version": 1, "webhooks": [');
    await expect(FileWebhookStore.open(dataDir)).rejects.toThrow(/not valid JSON/);
  });

  it('writes the file atomically, leaving no temporary file behind', async () => {
    const store = await FileWebhookStore.open(dataDir);
    await store.create(webhookRecord());
    expect(await readdir(dataDir)).toEqual([WEBHOOKS_FILE]);
    expect(JSON.parse(await readFile(path.join(dataDir, WEBHOOKS_FILE), 'utf8')).webhooks).toHaveLength(1);
  });
});

describe('FileDeliveryRecords', () => {
  it('keep the newest records per webhook, newest first, up to the bound, across reopening', async () => {
    const records = new FileDeliveryRecords(dataDir, { kept: 5 });
    const a = newWebhookId();
    const b = newWebhookId();
    for (let i = 1; i <= 8; i++) await records.add(a, attempt(`a${i}`));
    await records.add(b, attempt('b1'));
    expect((await records.list(a, 100)).map((r) => r.eventId)).toEqual(['a8', 'a7', 'a6', 'a5', 'a4']);
    expect((await records.list(a, 2)).map((r) => r.eventId)).toEqual(['a8', 'a7']);
    await records.close();

    const reopened = new FileDeliveryRecords(dataDir, { kept: 5 });
    expect((await reopened.list(a, 100)).map((r) => r.eventId)).toEqual(['a8', 'a7', 'a6', 'a5', 'a4']);
    expect(await reopened.list(b, 100)).toEqual([expect.objectContaining({ eventId: 'b1', status: 'delivered', responseStatus: 200 })]);
    await reopened.remove(a);
    expect(await reopened.list(a, 100)).toEqual([]);
    expect(await new FileDeliveryRecords(dataDir).list(a, 100)).toEqual([]);
    expect((await new FileDeliveryRecords(dataDir).list(b, 100)).map((r) => r.eventId)).toEqual(['b1']);
  });

  it('keeps every one of many concurrent adds, in the order they were made', async () => {
    const records = new FileDeliveryRecords(dataDir);
    const id = newWebhookId();
    await Promise.all(Array.from({ length: 30 }, (_, i) => records.add(id, attempt(`e${i}`))));
    expect((await records.list(id, 100)).map((r) => r.eventId)).toEqual(Array.from({ length: 30 }, (_, i) => `e${29 - i}`));
  });

  it('takes only webhook ids, so no id can name a file outside its directory', async () => {
    const records = new FileDeliveryRecords(dataDir);
    for (const id of ['../secret', 'wh_../../x', 'wh_a/b', '']) {
      expect((await rejection(records.add(id, attempt('e')))).code).toBe('WEBHOOK_NOT_FOUND');
      expect((await rejection(records.list(id, 1))).code).toBe('WEBHOOK_NOT_FOUND');
    }
    expect(await readdir(dataDir)).toEqual([]);
  });
});
