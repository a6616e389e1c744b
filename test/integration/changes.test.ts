import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();

interface Changes {
  created: string[];
  updated: Array<{ id: string; uid: number; flags: string[] }>;
  destroyed: string[];
  state: string;
  hasMore: boolean;
}

let gw: TestGateway;
let user: DovecotUser;
let account: string;

beforeAll(async () => {
  user = await dovecot.createUser('changes');
  await dovecot.seedMaildir(user.username, Array.from({ length: 10 }, (_, i) => textMessage({ subject: `D${i + 1}` })));
  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, user);
});
afterAll(async () => gw?.close());

const base = () => `/v1/accounts/${account}/mailboxes/INBOX`;

async function listing() {
  return (await gw.app.inject({ url: `${base()}/messages?limit=200` })).json() as {
    messages: Array<{ id: string; uid: number }>;
    state: string;
  };
}

async function changes(since: string, limit?: number) {
  const res = await gw.app.inject({ url: `${base()}/changes?since=${encodeURIComponent(since)}${limit ? `&limit=${limit}` : ''}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as Changes;
}

describe('GET .../changes', () => {
  it('reports nothing when nothing changed', async () => {
    const { state } = await listing();
    expect(await changes(state)).toEqual({ created: [], updated: [], destroyed: [], state, hasMore: false });
  });

  it('reports created, updated and destroyed messages made by other clients', async () => {
    const before = await listing();
    const byUid = new Map(before.messages.map((m) => [m.uid, m.id]));
    const [first, second, third] = [...byUid.keys()].sort((a, b) => a - b) as [number, number, number];

    await dovecot.seedMaildir(user.username, [textMessage({ subject: 'New one' })]);
    await dovecot.doveadm(['flags', 'add', '-u', user.username, '\\Flagged', 'mailbox', 'INBOX', 'uid', String(second)]);
    await dovecot.doveadm(['expunge', '-u', user.username, 'mailbox', 'INBOX', 'uid', String(third)]);

    const delta = await changes(before.state);
    expect(delta.created).toHaveLength(1);
    expect(delta.updated.map((m) => m.uid)).toEqual([second]);
    expect(delta.updated[0]!.flags).toContain('\\Flagged');
    expect(delta.destroyed).toEqual([byUid.get(third)]);
    expect(delta.hasMore).toBe(false);
    expect(delta.created).not.toContain(byUid.get(first));

    // The new state is current: nothing more since it.
    expect(await changes(delta.state)).toMatchObject({ created: [], updated: [], destroyed: [] });
    // And a listing agrees.
    const after = await listing();
    expect(after.state).toBe(delta.state);
    expect(after.messages.map((m) => m.id)).toEqual(expect.arrayContaining(delta.created));
  });

  it('pages many updates with hasMore, losing none', async () => {
    const before = await listing();
    const uids = before.messages.map((m) => m.uid);
    for (const uid of uids) {
      await dovecot.doveadm(['flags', 'add', '-u', user.username, '$Batch', 'mailbox', 'INBOX', 'uid', String(uid)]);
    }
    const seen = new Set<number>();
    let state = before.state;
    for (let rounds = 0; rounds < 20; rounds++) {
      const delta = await changes(state, 3);
      for (const m of delta.updated) seen.add(m.uid);
      state = delta.state;
      if (!delta.hasMore) break;
      expect(delta.updated).toHaveLength(3);
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([...uids].sort((a, b) => a - b));
  });

  it('after a UIDVALIDITY change: old ids are MESSAGE_NOT_FOUND, old states 410 STATE_TOO_OLD; garbage is 400', async () => {
    const other = await dovecot.createUser('changes-uv');
    await dovecot.seedMaildir(other.username, [textMessage({ subject: 'x' })], { mailbox: 'Box' });
    const acct = await createImapAccount(gw.app, dovecot, other);
    const url = `/v1/accounts/${acct}/mailboxes/Box`;
    const { state, messages } = (await gw.app.inject({ url: `${url}/messages` })).json();
    const oldId = messages[0].id as string;
    // Recreating the mailbox gives it a new UIDVALIDITY (Dovecot takes the time in seconds, so wait
    // for the next one). Sessions that had the old one selected are dropped, as a server restart would.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await dovecot.doveadm(['mailbox', 'delete', '-u', other.username, 'Box']);
    await dovecot.doveadm(['mailbox', 'create', '-u', other.username, 'Box']);
    await dovecot.doveadm(['kick', other.username]);
    // A message appended to the new mailbox gets UID 1 again: the old id must not name it.
    await dovecot.seedMaildir(other.username, [textMessage({ subject: 'newcomer' })], { mailbox: 'Box' });
    const stale = await gw.app.inject({ url: `${url}/messages/${oldId}` });
    expect(stale.statusCode).toBe(404);
    expect(stale.json().code).toBe('MESSAGE_NOT_FOUND');

    const res = await gw.app.inject({ url: `${url}/changes?since=${encodeURIComponent(state)}` });
    expect(res.statusCode).toBe(410);
    expect(res.json().code).toBe('STATE_TOO_OLD');

    const garbage = await gw.app.inject({ url: `${url}/changes?since=nonsense` });
    expect(garbage.statusCode).toBe(400);
    expect(garbage.json().code).toBe('VALIDATION_FAILED');
  });
});
