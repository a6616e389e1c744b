import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecotWithoutCondstore, type DovecotServer } from '../support/dovecot.js';
import { createImapAccount, createPop3Account, startGateway, type TestGateway } from '../support/gateway.js';
import { directImapClient } from '../support/imap-client.js';
import { startLatencyProxy } from '../support/latency-proxy.js';
import { textMessage } from '../support/messages.js';
import { testServers, type DovecotUser } from '../support/servers.js';

const { dovecot } = testServers();

let gw: TestGateway;
let user: DovecotUser;
let account: string;

interface Summary {
  id: string;
  uid: number;
  subject: string;
  flags: string[];
}

beforeAll(async () => {
  user = await dovecot.createUser('ifmatch');
  await dovecot.seedMaildir(
    user.username,
    Array.from({ length: 30 }, (_, i) => textMessage({ subject: `M${i + 1}` })),
  );
  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, user);
  for (const path of ['Archive', 'Other']) {
    const res = await gw.app.inject({ method: 'POST', url: `/v1/accounts/${account}/mailboxes`, payload: { path } });
    expect(res.statusCode, res.body).toBe(201);
  }
});
afterAll(async () => {
  await gw?.close();
});

const messagesUrl = (mailbox = 'INBOX', acc = account): string => `/v1/accounts/${acc}/mailboxes/${mailbox}/messages`;

async function listing(mailbox = 'INBOX', acc = account): Promise<{ messages: Summary[]; state: string; etag: string }> {
  const res = await gw.app.inject({ url: `${messagesUrl(mailbox, acc)}?limit=5` });
  expect(res.statusCode, res.body).toBe(200);
  return { ...(res.json() as { messages: Summary[]; state: string }), etag: res.headers.etag as string };
}

/** The message the test works on: a listed one nobody else touched yet. */
let next = 0;
async function pick(acc = account): Promise<{ msg: Summary; state: string; etag: string }> {
  const page = await listing('INBOX', acc);
  const msg = page.messages[next++ % page.messages.length]!;
  return { msg, state: page.state, etag: page.etag };
}

function patch(msg: Summary, ifMatch: string | undefined, payload: object = { flagged: true }, acc = account) {
  return gw.app.inject({
    method: 'PATCH',
    url: `${messagesUrl('INBOX', acc)}/${msg.id}`,
    headers: ifMatch === undefined ? {} : { 'if-match': ifMatch },
    payload,
  });
}

function move(msg: Summary, ifMatch: string, destination = 'Archive') {
  return gw.app.inject({
    method: 'POST',
    url: `${messagesUrl()}/${msg.id}/move`,
    headers: { 'if-match': ifMatch },
    payload: { destination },
  });
}

function remove(msg: Summary, ifMatch: string, acc = account) {
  return gw.app.inject({ method: 'DELETE', url: `${messagesUrl('INBOX', acc)}/${msg.id}`, headers: { 'if-match': ifMatch } });
}

/** The flags of `uid` in INBOX as Dovecot has them (another client's view). */
async function serverFlags(uid: number, username = user.username, server: { doveadm(args: string[]): Promise<string> } = dovecot): Promise<string> {
  return server.doveadm(['fetch', '-u', username, 'flags', 'mailbox', 'INBOX', 'uid', String(uid)]);
}

async function messageCount(mailbox: string, username = user.username, server: { doveadm(args: string[]): Promise<string> } = dovecot): Promise<number> {
  const out = await server.doveadm(['mailbox', 'status', '-u', username, 'messages', mailbox]);
  return Number(/messages=(\d+)/.exec(out)?.[1]);
}

/** A change by another client: a keyword on some other message of INBOX. */
async function otherClientFlags(uid: number, flag = '$Other'): Promise<void> {
  await dovecot.doveadm(['flags', 'add', '-u', user.username, flag, 'mailbox', 'INBOX', 'uid', String(uid)]);
}

function expect412(res: { statusCode: number; body: string; json(): unknown }, says: RegExp): void {
  expect(res.statusCode, res.body).toBe(412);
  const problem = res.json() as { code: string; detail: string };
  expect(problem.code).toBe('PRECONDITION_FAILED');
  expect(problem.detail).toMatch(says);
  expect(problem.detail).toMatch(/Nothing was written/);
}

describe('If-Match on IMAP with CONDSTORE (Dovecot)', () => {
  it('writes with the current state: PATCH, move and DELETE', async () => {
    const a = await pick();
    const patched = await patch(a.msg, a.etag);
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().flags).toContain('\\Flagged');

    // The state moved with the gateway's own write: the next write needs the new one.
    const b = await pick();
    expect(b.state).not.toBe(a.state);
    const moved = await move(b.msg, b.etag);
    expect(moved.statusCode, moved.body).toBe(200);

    const c = await pick();
    const deleted = await remove(c.msg, c.etag);
    expect(deleted.statusCode, deleted.body).toBe(204);
    expect((await gw.app.inject({ url: `${messagesUrl()}/${c.msg.id}` })).statusCode).toBe(404);
  });

  it('refuses each write with 412 after another client changed a flag elsewhere, writing nothing', async () => {
    const { msg, etag, state } = await pick();
    const archived = await messageCount('Archive');
    const page = await listing();
    const other = page.messages.find((m) => m.uid !== msg.uid)!;
    await otherClientFlags(other.uid);

    expect412(await patch(msg, etag, { addFlags: ['$Mine'] }), /flags changed/);
    expect(await serverFlags(msg.uid)).not.toContain('$Mine');
    expect412(await move(msg, etag), /flags changed/);
    expect(await messageCount('Archive')).toBe(archived);
    expect412(await remove(msg, etag), /flags changed/);
    expect((await gw.app.inject({ url: `${messagesUrl()}/${msg.id}` })).statusCode).toBe(200);

    // Listing again gives the state to retry with.
    const fresh = await listing();
    expect(fresh.state).not.toBe(state);
    expect((await patch(msg, fresh.etag, { addFlags: ['$Mine'] })).statusCode).toBe(200);
  });

  it('refuses after another client appended or expunged, and says which', async () => {
    const { msg, etag } = await pick();
    const direct = directImapClient(dovecot, user);
    await direct.connect();
    try {
      await direct.append('INBOX', textMessage({ subject: 'Arrived behind the gateway' }));
      expect412(await patch(msg, etag, { addFlags: ['$AfterAppend'] }), /1 message arrived/);
      expect(await serverFlags(msg.uid)).not.toContain('$AfterAppend');

      const page = await listing();
      const [target, victim] = page.messages;
      await direct.mailboxOpen('INBOX');
      await direct.messageDelete(String(victim!.uid), { uid: true });
      expect412(await remove(target!, page.etag), /1 message was removed/);
      expect((await gw.app.inject({ url: `${messagesUrl()}/${target!.id}` })).statusCode).toBe(200);
    } finally {
      await direct.logout();
    }
  });

  it('takes a list of tags (any current one suffices), * for any existing message, and ignores weak tags', async () => {
    const stale = (await pick()).etag;
    await otherClientFlags((await listing()).messages[3]!.uid, '$Listed');
    const { msg, etag } = await pick();
    expect((await patch(msg, `${stale}, ${etag}`, { addFlags: ['$Either'] })).statusCode).toBe(200);

    const star = await patch(msg, '*', { addFlags: ['$Star'] });
    expect(star.statusCode, star.body).toBe(200);
    expect(star.json().flags).toContain('$Star');

    const now = await pick();
    expect412(await patch(now.msg, `W/${now.etag}`, { addFlags: ['$Weak'] }), /weak tags/);
    expect(await serverFlags(now.msg.uid)).not.toContain('$Weak');
  });

  it('answers a state of another mailbox, or garbage, with 412, and a malformed header with 400', async () => {
    const { msg } = await pick();
    const other = await listing('Other');
    expect412(await patch(msg, other.etag), /another mailbox's|UIDVALIDITY/);
    expect412(await remove(msg, '"not-a-state"'), /not a listing state/);
    for (const header of ['no-quotes', '"unterminated', '"a" "b"']) {
      const res = await patch(msg, header, { addFlags: ['$Malformed'] });
      expect(res.statusCode, header).toBe(400);
      expect(res.json().code).toBe('VALIDATION_FAILED');
    }
    expect(await serverFlags(msg.uid)).not.toContain('$Malformed');
  });

  it('lets one of two writes with the same state win: the other is 412 and leaves no trace', async () => {
    const { msg, etag } = await pick();
    const [first, second] = await Promise.all([
      patch(msg, etag, { addFlags: ['$RaceA'] }),
      patch(msg, etag, { addFlags: ['$RaceB'] }),
    ]);
    expect([first.statusCode, second.statusCode].sort()).toEqual([200, 412]);
    const flags = await serverFlags(msg.uid);
    expect(flags.includes('$RaceA') !== flags.includes('$RaceB')).toBe(true);
  });

  it('answers 404, not 412, for a message that is gone, whatever the header says', async () => {
    const { msg, etag } = await pick();
    expect((await remove(msg, etag)).statusCode).toBe(204);
    const res = await patch(msg, '"stale"');
    expect(res.statusCode, res.body).toBe(404);
    expect(res.json().code).toBe('MESSAGE_NOT_FOUND');
    expect((await patch(msg, '*')).statusCode).toBe(404);
  });

  it('makes the flag check and the write one command: a change after the check fails the UNCHANGEDSINCE STORE', async () => {
    const proxy = await startLatencyProxy({ host: dovecot.host, port: dovecot.imapPort });
    try {
      const slow = await createImapAccount(gw.app, dovecot, user, { host: proxy.host, port: proxy.port });
      const { msg, etag } = await pick(slow);
      // Answers reach the gateway 400 ms late, so its STORE goes out 400 ms after the server answered
      // the FETCH that follows the check's NOOP. Another client changes the message in that gap.
      proxy.delayMs = 400;
      const fetchSent = proxy.clientSends(/UID FETCH \d+ \(UID FLAGS[ )]/);
      const write = patch(msg, etag, { addFlags: ['$Late'] }, slow);
      await fetchSent;
      await new Promise((resolve) => setTimeout(resolve, 50));
      await dovecot.doveadm(['flags', 'add', '-u', user.username, '$Meanwhile', 'mailbox', 'INBOX', 'uid', String(msg.uid)]);
      const res = await write;
      proxy.delayMs = 0;
      expect412(res, /changed by another client just now/);
      expect(proxy.clientText()).toMatch(new RegExp(`UID STORE ${msg.uid} \\(UNCHANGEDSINCE \\d+\\) FLAGS`));
      const flags = await serverFlags(msg.uid);
      expect(flags).toContain('$Meanwhile');
      expect(flags).not.toContain('$Late');
    } finally {
      await proxy.close();
    }
  });

  it('sends no extra command on writes without If-Match', async () => {
    const proxy = await startLatencyProxy({ host: dovecot.host, port: dovecot.imapPort });
    try {
      const counted = await createImapAccount(gw.app, dovecot, user, { host: proxy.host, port: proxy.port });
      const { msg } = await pick(counted);
      const before = proxy.clientText().length;
      expect((await patch(msg, undefined, { addFlags: ['$Plain'] }, counted)).statusCode).toBe(200);
      const sent = proxy.clientText().slice(before);
      expect(sent).not.toMatch(/UNCHANGEDSINCE|STATUS/);
      expect(sent.match(/ NOOP\r\n/g)?.length ?? 0).toBeLessThanOrEqual(1);
    } finally {
      await proxy.close();
    }
  });
});

describe('If-Match on IMAP without CONDSTORE', () => {
  let plain: DovecotServer;
  let plainAccount: string;

  beforeAll(async () => {
    plain = await startDovecotWithoutCondstore([{ username: 'plain', password: 'plain-pw' }]);
    await plain.seedMaildir('plain', Array.from({ length: 12 }, (_, i) => textMessage({ subject: `N${i}` })));
    plainAccount = await createImapAccount(gw.app, plain, plain.users[0]!);
    const res = await gw.app.inject({ method: 'POST', url: `/v1/accounts/${plainAccount}/mailboxes`, payload: { path: 'Archive' } });
    expect(res.statusCode, res.body).toBe(201);
  });
  afterAll(async () => {
    await plain?.stop();
  });

  it('checks the listed page again: a flag changed on it is 412, one off the page is not', async () => {
    const page = await listing('INBOX', plainAccount);
    const [target, neighbour] = page.messages;
    await plain.doveadm(['flags', 'add', '-u', 'plain', '\\Flagged', 'mailbox', 'INBOX', 'uid', String(neighbour!.uid)]);
    expect412(await patch(target!, page.etag, { addFlags: ['$Mine'] }, plainAccount), /flags of messages on that listing page changed/);
    expect(await serverFlags(target!.uid, 'plain', plain)).not.toContain('$Mine');
    expect412(await remove(target!, page.etag, plainAccount), /listing page changed/);

    // The first message is far below this page: changing it leaves the page's state current.
    const fresh = await listing('INBOX', plainAccount);
    await plain.doveadm(['flags', 'add', '-u', 'plain', '\\Seen', 'mailbox', 'INBOX', 'uid', '1']);
    const ok = await patch(target!, fresh.etag, { addFlags: ['$Mine'] }, plainAccount);
    expect(ok.statusCode, ok.body).toBe(200);
  });

  it('refuses after an arrival and deletes with the current state', async () => {
    const page = await listing('INBOX', plainAccount);
    const target = page.messages[2]!;
    await plain.seedMaildir('plain', [textMessage({ subject: 'New behind the gateway' })]);
    expect412(await remove(target, page.etag, plainAccount), /1 message arrived/);
    expect(await messageCount('INBOX', 'plain', plain)).toBe(13);
    const fresh = await listing('INBOX', plainAccount);
    expect((await remove(target, fresh.etag, plainAccount)).statusCode).toBe(204);
    expect(await messageCount('INBOX', 'plain', plain)).toBe(12);
  });
});

describe('If-Match on POP3 (DELETE)', () => {
  let popUser: DovecotUser;
  let pop: string;

  beforeAll(async () => {
    popUser = await dovecot.createUser('ifmatchpop');
    await dovecot.seedMaildir(popUser.username, Array.from({ length: 4 }, (_, i) => textMessage({ subject: `P${i}` })));
    pop = await createPop3Account(gw.app, dovecot, popUser);
  });

  it('deletes with the maildrop state and refuses once mail arrived, deleting nothing', async () => {
    const page = await listing('INBOX', pop);
    const [first, second] = page.messages;
    await dovecot.seedMaildir(popUser.username, [textMessage({ subject: 'Arrived' })]);
    expect412(await remove(first!, page.etag, pop), /maildrop changed/);
    expect(await messageCount('INBOX', popUser.username)).toBe(5);
    expect412(await remove(first!, '"i1.not.pop"', pop), /not a listing state/);

    const fresh = await listing('INBOX', pop);
    expect((await remove(first!, fresh.etag, pop)).statusCode).toBe(204);
    expect(await messageCount('INBOX', popUser.username)).toBe(4);
    expect((await remove(second!, '*', pop)).statusCode).toBe(204);
  });
});
