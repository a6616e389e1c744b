/**
 * FileEventLog: the EventLog contract, and what only files have to get right: a crash (the next
 * process opens the same directory), a line torn by one, a clock that goes backwards, retention that
 * deletes segments without losing the state, readers far behind the in-memory tail, odd account ids.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { accountDirName } from '../../src/events/log/account-dir.js';
import { compareEventIds } from '../../src/events/log/event-id.js';
import { FileEventLog, type FileEventLogOptions } from '../../src/events/log/file-event-log.js';
import { DAY_MS, eventLogContract, newEvent, state } from '../support/event-log-contract.js';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mailgw-events-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** A clock the test moves; starts at a fixed, realistic time. */
function fakeClock(start = Date.parse('2030-01-01T00:00:00Z')): { now: () => number; set: (ms: number) => void; advance: (ms: number) => void } {
  let current = start;
  return { now: () => current, set: (ms) => (current = ms), advance: (ms) => (current += ms) };
}

describe('FileEventLog: the EventLog contract', () => {
  const clock = fakeClock();
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(root, 'contract-'));
  });
  eventLogContract({
    make: async (options = {}) =>
      new FileEventLog({ dataDir, retentionMs: options.retentionMs ?? DAY_MS, now: options.now ?? clock.now }),
    elapse: async (ms) => clock.advance(ms),
  });
});

describe('FileEventLog on disk', () => {
  const opened: FileEventLog[] = [];
  let dataDir: string;
  const open = (options: Partial<FileEventLogOptions> = {}): FileEventLog => {
    const log = new FileEventLog({ dataDir, retentionMs: DAY_MS, ...options });
    opened.push(log);
    return log;
  };
  const accountDir = (acct: string): string => path.join(dataDir, 'events', accountDirName(acct));
  const segments = async (acct: string): Promise<string[]> => (await fs.readdir(accountDir(acct))).filter((f) => f.endsWith('.jsonl')).sort();

  beforeAll(async () => {
    dataDir = await fs.mkdtemp(path.join(root, 'disk-'));
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((log) => log.close()));
  });

  it('finds everything again in a new process on the same directory, without the first having closed', async () => {
    const first = open();
    const stored = [
      ...(await first.append('crash', [newEvent('message.new', 'INBOX', { n: 1 })], [{ mailbox: 'INBOX', state: state(2, 1), replace: true, set: [['1', []]] }])),
      ...(await first.append('crash', [newEvent('message.updated', 'INBOX', { n: 2 })], [{ mailbox: 'INBOX', state: state(2, 1), set: [['1', ['\\Seen']]] }])),
    ];
    // No close(): as after kill -9, the second instance reads what the first left.
    const second = open();
    expect(await second.readAfter('crash', '0-0', 10)).toEqual({ events: stored, lost: false });
    expect(await second.latestId('crash')).toBe(stored[1]!.id);
    expect(await second.loadStates('crash')).toEqual(new Map([['INBOX', state(2, 1)]]));
    expect(await second.loadMessages('crash', 'INBOX')).toEqual(new Map([['1', ['\\Seen']]]));
    const [third] = await second.append('crash', [newEvent('message.deleted', 'INBOX')]);
    expect(compareEventIds(third!.id, stored[1]!.id)).toBeGreaterThan(0);
  });

  it('drops a line torn by a crash, events and state changes together, and appends cleanly after it', async () => {
    const first = open();
    const [kept] = await first.append('torn', [newEvent('message.new', 'INBOX', { n: 1 })], [{ mailbox: 'INBOX', state: state(2, 1), replace: true, set: [['1', []]] }]);
    const [segment] = await segments('torn');
    const file = path.join(accountDir('torn'), segment!);
    // What a write cut short leaves: the start of the next line (with a state change in it), no newline.
    const whole = await fs.readFile(file, 'utf8');
    const nextLine = whole.replace('"n":1', '"n":2').replace(kept!.id, '9999999999999-0').replace('"uidNext":2', '"uidNext":99');
    await fs.appendFile(file, nextLine.slice(0, Math.floor(nextLine.length * 0.7)));

    const second = open();
    expect(await second.readAfter('torn', '0-0', 10)).toEqual({ events: [kept], lost: false });
    expect((await second.loadStates('torn')).get('INBOX')).toEqual(state(2, 1));
    expect(await fs.readFile(file, 'utf8')).toBe(whole);
    const [next] = await second.append('torn', [newEvent('message.new', 'INBOX', { n: 2 })]);

    const third = open();
    expect((await third.readAfter('torn', '0-0', 10)).events).toEqual([kept, next]);
  });

  it('keeps ids increasing when the clock goes backwards, also across a restart', async () => {
    const clock = fakeClock();
    const first = open({ now: clock.now });
    const ids = (await first.append('clock', [newEvent('message.new', 'INBOX'), newEvent('message.new', 'INBOX')])).map((e) => e.id);
    clock.advance(-60_000);
    ids.push(...(await first.append('clock', [newEvent('message.new', 'INBOX')])).map((e) => e.id));
    clock.advance(-3_600_000);
    const second = open({ now: clock.now });
    ids.push(...(await second.append('clock', [newEvent('message.new', 'INBOX')])).map((e) => e.id));
    clock.advance(7_200_000);
    ids.push(...(await second.append('clock', [newEvent('message.new', 'INBOX')])).map((e) => e.id));
    for (let i = 1; i < ids.length; i++) expect(compareEventIds(ids[i - 1]!, ids[i]!), `${ids[i - 1]} < ${ids[i]}`).toBeLessThan(0);
    expect((await second.readAfter('clock', '0-0', 10)).events.map((e) => e.id)).toEqual(ids);
  });

  it('deletes whole old segments, remembers across a restart what they held, and keeps the state they brought', async () => {
    const clock = fakeClock();
    const retentionMs = 24 * 3_600_000;
    const log = open({ now: clock.now, retentionMs });
    const [old] = await log.append('aged', [newEvent('message.new', 'INBOX')], [{ mailbox: 'INBOX', state: state(2, 1), replace: true, set: [['1', ['\\Seen']]] }]);
    for (let hour = 1; hour <= 30; hour++) {
      clock.advance(3_600_000);
      await log.append('aged', [newEvent('message.new', 'Archive', { hour })]);
    }
    const files = await segments('aged');
    expect(files.length).toBeGreaterThan(20);
    expect(files.length).toBeLessThan(28); // the oldest went
    const kept = (await log.readAfter('aged', '0-0', 100)).events;
    expect(kept[0]!.hour).toBeGreaterThan(1);

    const again = open({ now: clock.now, retentionMs });
    expect((await again.readAfter('aged', old!.id, 100)).lost).toBe(true);
    expect((await again.readAfter('aged', kept[0]!.id, 100)).lost).toBe(false);
    expect(await again.loadStates('aged')).toEqual(new Map([['INBOX', state(2, 1)]]));
    expect(await again.loadMessages('aged', 'INBOX')).toEqual(new Map([['1', ['\\Seen']]]));
  });

  it('answers a reader far behind from the segments, and one near the end from memory, alike', async () => {
    const log = open({ tailEvents: 5, maxSegmentBytes: 600 });
    const stored = [];
    for (let i = 0; i < 40; i++) stored.push(...(await log.append('behind', [newEvent('message.new', 'INBOX', { i })])));
    expect((await segments('behind')).length).toBeGreaterThan(3);
    expect(await log.readAfter('behind', '0-0', 100)).toEqual({ events: stored, lost: false });
    expect(await log.readAfter('behind', stored[10]!.id, 3)).toEqual({ events: stored.slice(11, 14), lost: false });
    expect(await log.readAfter('behind', stored[36]!.id, 100)).toEqual({ events: stored.slice(37), lost: false });
    const fresh = open({ tailEvents: 5 });
    expect(await fresh.readAfter('behind', stored[20]!.id, 100)).toEqual({ events: stored.slice(21), lost: false });
  });

  it('rebuilds the state from a snapshot and the lines after it', async () => {
    const log = open({ compactAfterBytes: 2_000 });
    const set: Array<[string, string[]]> = Array.from({ length: 100 }, (_, i) => [String(i + 1), ['\\Seen']]);
    await log.append('snap', [], [{ mailbox: 'INBOX', state: state(101, 100), replace: true, set }]);
    await log.append('snap', [newEvent('message.updated', 'INBOX')], [{ mailbox: 'INBOX', state: state(101, 100), set: [['7', []]] }]);
    await expect(fs.stat(path.join(accountDir('snap'), 'state.json'))).resolves.toBeTruthy();
    await log.append('snap', [newEvent('message.deleted', 'INBOX')], [{ mailbox: 'INBOX', state: state(101, 99), remove: ['8'] }]);

    const again = open();
    const messages = await again.loadMessages('snap', 'INBOX');
    expect(messages.size).toBe(99);
    expect(messages.get('7')).toEqual([]);
    expect(messages.get('8')).toBeUndefined();
    expect(messages.get('9')).toEqual(['\\Seen']);
    expect((await again.loadStates('snap')).get('INBOX')).toEqual(state(101, 99));
  });

  it('gives every account id a directory of its own inside events/, whatever its characters', async () => {
    const log = open();
    const ids = ['Alice', 'alice', '../escape', '.', '..', 'a/b', 'a\\b', 'a:b', 'ünï', 'x'.repeat(300), '%41lice'];
    for (const id of ids) await log.append(id, [newEvent('message.new', 'INBOX', { id })]);
    for (const id of ids) expect((await log.readAfter(id, '0-0', 10)).events.map((e) => e.account)).toEqual([id]);
    const dirs = await fs.readdir(path.join(dataDir, 'events'));
    for (const id of ids) expect(dirs).toContain(accountDirName(id));
    expect(new Set(ids.map(accountDirName)).size).toBe(ids.length);
    expect(await fs.readdir(dataDir)).toEqual(['events']);
  });

  it('writes files only it may read (mode 0600, directories 0700)', async () => {
    const log = open();
    await log.append('modes', [newEvent('message.new', 'INBOX')], [{ mailbox: 'INBOX', state: state(2, 1) }]);
    const [segment] = await segments('modes');
    expect((await fs.stat(path.join(accountDir('modes'), segment!))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(accountDir('modes'))).mode & 0o777).toBe(0o700);
  });
});
