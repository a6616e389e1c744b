/**
 * GET /v1/accounts/{account}/mailboxes against the real Dovecot of the run.
 *
 * The test Dovecot uses Maildir++ storage with no `separator` set, so its hierarchy delimiter is "."
 * (a "/" in a name is refused: "Name must not have '/' characters"). Mailboxes are created with
 * imapflow's array form (`['Work', '2024']`), which joins with whatever delimiter the server reports.
 */
import type { ImapFlow } from 'imapflow';
import { directImapClient } from '../support/imap-client.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();

interface MailboxJson {
  path: string;
  name: string;
  delimiter: string | null;
  parent: string | null;
  specialUse: string | null;
  subscribed: boolean;
  flags: string[];
  counts?: { messages: number; unseen: number; uidNext: number | null; uidValidity: string | null };
}

function imapClient(user: DovecotUser): ImapFlow {
  return directImapClient(dovecot, user);
}

/** `doveadm mailbox status` for every mailbox of the user: what another client sees. */
async function doveadmStatus(user: DovecotUser): Promise<Map<string, Record<string, string>>> {
  const out = await dovecot.doveadm([
    '-f', 'json', 'mailbox', 'status', '-u', user.username, 'messages unseen uidnext uidvalidity', '*',
  ]);
  const rows = JSON.parse(out) as Array<Record<string, string>>;
  return new Map(rows.map((row) => [row.mailbox!, row]));
}

let gw: TestGateway;
let user: DovecotUser;
let account: string;
let delimiter: string;

/** The paths the server uses, built with its delimiter. */
const p = (...segments: string[]): string => segments.join(delimiter);

beforeAll(async () => {
  user = await dovecot.createUser('mbx');
  const client = imapClient(user);
  await client.connect();
  const listed = await client.list();
  delimiter = listed.find((m) => m.path === 'INBOX')!.delimiter;

  await client.mailboxCreate(['Work', '2024']); // "Work" exists only as a hierarchy level
  await client.mailboxCreate('Entwürfe');
  await client.mailboxCreate(['日本語', '子']);
  await client.mailboxCreate(['a', 'b', 'c']); // neither "a" nor "a.b" is created
  await client.mailboxCreate('Unsubscribed');
  await client.mailboxUnsubscribe('Unsubscribed');

  // INBOX: 3 unseen and 2 seen; Work.2024: 4 (1 seen); 日本語.子: 1 unseen; Trash: 2 seen.
  for (let i = 0; i < 3; i++) await client.append('INBOX', textMessage({ subject: `unseen ${i}` }));
  for (let i = 0; i < 2; i++) await client.append('INBOX', textMessage({ subject: `seen ${i}` }), ['\\Seen']);
  for (let i = 0; i < 4; i++) {
    await client.append(p('Work', '2024'), textMessage({ subject: `work ${i}` }), i === 0 ? ['\\Seen'] : []);
  }
  await client.append(p('日本語', '子'), textMessage({ subject: 'こんにちは' }));
  for (let i = 0; i < 2; i++) await client.append('Trash', textMessage({ subject: `trash ${i}` }), ['\\Seen']);
  // An expunge leaves a hole in the UIDs, so uidNext != messages + 1 in INBOX.
  await client.mailboxOpen('INBOX');
  await client.append('INBOX', textMessage({ subject: 'deleted soon' }));
  await client.messageDelete({ subject: 'deleted soon' });
  await client.logout();

  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, user);
});

afterAll(async () => {
  await gw?.close();
});

async function mailboxes(query = ''): Promise<MailboxJson[]> {
  const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes${query}` });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { mailboxes: MailboxJson[] }).mailboxes;
}

const byPath = (list: MailboxJson[], path: string): MailboxJson => {
  const found = list.find((m) => m.path === path);
  if (!found) throw new Error(`no mailbox ${path} in ${list.map((m) => m.path).join(', ')}`);
  return found;
};

describe('mailbox list', () => {
  it('uses the delimiter the server reports ("." for Maildir++ here)', async () => {
    expect(delimiter).toBe('.');
    const list = await mailboxes();
    for (const m of list) expect(m.delimiter).toBe(delimiter);
  });

  it('lists INBOX first, every path once, and every mailbox doveadm knows', async () => {
    const list = await mailboxes();
    expect(list[0]!.path).toBe('INBOX');
    const paths = list.map((m) => m.path);
    expect(new Set(paths).size).toBe(paths.length);
    const known = (await dovecot.doveadm(['mailbox', 'list', '-u', user.username])).split('\n').filter(Boolean);
    for (const path of known) expect(paths).toContain(path);
  });

  it('reports the special-use roles configured in Dovecot, and \\Inbox for INBOX', async () => {
    const list = await mailboxes();
    expect(byPath(list, 'INBOX').specialUse).toBe('\\Inbox');
    for (const role of ['Sent', 'Drafts', 'Trash', 'Junk', 'Archive']) {
      const m = byPath(list, role);
      expect(m.specialUse, role).toBe(`\\${role}`);
      expect(m.subscribed, role).toBe(true); // auto = subscribe
      expect(m.parent).toBeNull();
    }
    // No other mailbox claims a role (in particular not "Entwürfe", German for drafts).
    const roles = list.filter((m) => m.specialUse !== null).map((m) => m.path).sort();
    expect(roles).toEqual(['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
  });

  it('gives nested mailboxes name and parent, and lists a hierarchy-only parent with \\Noselect', async () => {
    const list = await mailboxes();
    expect(byPath(list, p('Work', '2024'))).toMatchObject({ name: '2024', parent: 'Work', subscribed: true });
    expect(byPath(list, p('Work', '2024')).flags).not.toContain('\\Noselect');
    expect(byPath(list, 'Work')).toMatchObject({ name: 'Work', parent: null });
    expect(byPath(list, 'Work').flags).toContain('\\Noselect');

    // a.b.c created alone: both levels above it are listed, \Noselect, and chained by parent.
    expect(byPath(list, p('a', 'b', 'c'))).toMatchObject({ name: 'c', parent: p('a', 'b') });
    expect(byPath(list, p('a', 'b'))).toMatchObject({ name: 'b', parent: 'a', subscribed: false });
    expect(byPath(list, 'a')).toMatchObject({ name: 'a', parent: null, subscribed: false });
    expect(byPath(list, p('a', 'b')).flags).toContain('\\Noselect');
    expect(byPath(list, 'a').flags).toContain('\\Noselect');
    expect(byPath(list, p('a', 'b', 'c')).flags).not.toContain('\\Noselect');
    // Every parent named is itself listed.
    const paths = new Set(list.map((m) => m.path));
    for (const m of list) if (m.parent !== null) expect(paths.has(m.parent), m.path).toBe(true);
  });

  it('answers a hierarchy-only parent selected as a mailbox with 404 MAILBOX_NOT_FOUND, not 5xx', async () => {
    const res = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${encodeURIComponent('a')}/messages` });
    expect(res.statusCode, res.body).toBe(404);
    expect(res.json().code).toBe('MAILBOX_NOT_FOUND');
  });

  it('reports subscription state (false for an unsubscribed mailbox, not missing)', async () => {
    const list = await mailboxes();
    expect(byPath(list, 'Unsubscribed').subscribed).toBe(false);
    expect(byPath(list, 'INBOX').subscribed).toBe(true);
    for (const m of list) expect(typeof m.subscribed, m.path).toBe('boolean');
  });

  it('gives non-ASCII names as plain UTF-8 (modified UTF-7 on the wire) and lists them by URL-encoded path', async () => {
    const list = await mailboxes();
    expect(byPath(list, 'Entwürfe')).toMatchObject({ name: 'Entwürfe', parent: null });
    expect(byPath(list, p('日本語', '子'))).toMatchObject({ name: '子', parent: '日本語' });
    expect(byPath(list, '日本語').flags).toContain('\\Noselect');
    for (const m of list) expect(m.path).not.toMatch(/&[A-Za-z0-9+,]*-/); // no modified UTF-7 leaks

    const res = await gw.app.inject({
      url: `/v1/accounts/${account}/mailboxes/${encodeURIComponent(p('日本語', '子'))}/messages`,
    });
    expect(res.statusCode, res.body).toBe(200);
    const page = res.json() as { total: number; messages: Array<{ id: string; subject: string }> };
    expect(page.total).toBe(1);
    expect(page.messages[0]!.subject).toBe('こんにちは');
    const base = `/v1/accounts/${account}/mailboxes/${encodeURIComponent(p('日本語', '子'))}/messages`;
    const id = page.messages[0]!.id;
    const detail = await gw.app.inject({ url: `${base}/${id}` });
    expect(detail.statusCode, detail.body).toBe(200);
    expect(detail.json().subject).toBe('こんにちは');
    const raw = await gw.app.inject({ url: `${base}/${id}/raw` });
    expect(raw.statusCode, raw.body).toBe(200);
    expect(raw.rawPayload.toString('utf8')).toContain('Subject: こんにちは');

    const empty = await gw.app.inject({ url: `/v1/accounts/${account}/mailboxes/${encodeURIComponent('Entwürfe')}/messages` });
    expect(empty.statusCode, empty.body).toBe(200);
    expect(empty.json().total).toBe(0);
  });

  it('lists a nested mailbox through its URL-encoded path', async () => {
    const res = await gw.app.inject({
      url: `/v1/accounts/${account}/mailboxes/${encodeURIComponent(p('Work', '2024'))}/messages?limit=2`,
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().total).toBe(4);
  });

  it('has no counts without ?counts=true', async () => {
    for (const m of await mailboxes()) expect(m.counts).toBeUndefined();
  });

  it('with ?counts=true matches doveadm mailbox status for every selectable mailbox', async () => {
    const list = await mailboxes('?counts=true');
    const status = await doveadmStatus(user);
    expect(status.size).toBeGreaterThan(5);
    for (const [path, row] of status) {
      const m = byPath(list, path);
      expect(m.counts, path).toEqual({
        messages: Number(row.messages),
        unseen: Number(row.unseen),
        uidNext: Number(row.uidnext),
        uidValidity: row.uidvalidity,
      });
    }
    // The values themselves, so a doveadm/gateway agreement on nonsense would not pass.
    expect(byPath(list, 'INBOX').counts).toMatchObject({ messages: 5, unseen: 3, uidNext: 7 });
    expect(byPath(list, p('Work', '2024')).counts).toMatchObject({ messages: 4, unseen: 3, uidNext: 5 });
    expect(byPath(list, p('日本語', '子')).counts).toMatchObject({ messages: 1, unseen: 1 });
    expect(byPath(list, 'Trash').counts).toMatchObject({ messages: 2, unseen: 0 });
    expect(byPath(list, 'Sent').counts).toMatchObject({ messages: 0, unseen: 0, uidNext: 1 });
    for (const m of list) {
      if (m.counts?.uidValidity !== null && m.counts?.uidValidity !== undefined) expect(m.counts.uidValidity).toMatch(/^[1-9]\d*$/);
    }
    // A hierarchy-only level has nothing to count and no UIDs.
    for (const path of ['Work', 'a', p('a', 'b'), '日本語']) {
      expect(byPath(list, path).counts, path).toEqual({ messages: 0, unseen: 0, uidNext: null, uidValidity: null });
    }
  });

  it('follows changes made by another client', async () => {
    await dovecot.doveadm(['mailbox', 'create', '-u', user.username, p('Later', 'x')]);
    const list = await mailboxes('?counts=true');
    expect(byPath(list, p('Later', 'x'))).toMatchObject({ parent: 'Later', counts: { messages: 0 } });
    expect(byPath(list, 'Later').flags).toContain('\\Noselect');
  });
});
