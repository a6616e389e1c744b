import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testServers, type DovecotUser } from '../support/servers.js';
import { createImapAccount, startGateway, type TestGateway } from '../support/gateway.js';
import { textMessage } from '../support/messages.js';

const { dovecot } = testServers();

let gw: TestGateway;
let user: DovecotUser;
let account: string;

beforeAll(async () => {
  user = await dovecot.createUser('write');
  await dovecot.seedMaildir(
    user.username,
    Array.from({ length: 12 }, (_, i) => textMessage({ subject: `Note ${i + 1}`, from: `Writer ${i} <w${i}@example.com>` })),
  );
  gw = await startGateway();
  account = await createImapAccount(gw.app, dovecot, user);
});

afterAll(async () => {
  await gw?.close();
});

const base = () => `/v1/accounts/${account}/mailboxes`;

async function newest(mailbox = 'INBOX', query = '') {
  const res = await gw.app.inject({ url: `${base()}/${encodeURIComponent(mailbox)}/messages?limit=200${query}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as { messages: Array<{ id: string; uid: number; subject: string; flags: string[]; seen: boolean; flagged: boolean }>; total: number; nextCursor: string | null };
}

describe('flags', () => {
  it('sets and clears system flags and keywords, answering the updated summary', async () => {
    const [msg] = (await newest()).messages;
    const res = await gw.app.inject({
      method: 'PATCH',
      url: `${base()}/INBOX/messages/${msg!.id}`,
      payload: { seen: true, flagged: true, addFlags: ['$Work'] },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: msg!.id, seen: true, flagged: true });
    expect(res.json().flags).toEqual(expect.arrayContaining(['\\Seen', '\\Flagged', '$Work']));

    const cleared = await gw.app.inject({
      method: 'PATCH',
      url: `${base()}/INBOX/messages/${msg!.id}`,
      payload: { flagged: false, removeFlags: ['$Work'] },
    });
    expect(cleared.json().flags).toEqual(['\\Seen']);
    // Another client sees it.
    const status = await dovecot.doveadm(['fetch', '-u', user.username, 'flags', 'mailbox', 'INBOX', 'uid', String(msg!.uid)]);
    expect(status).toContain('\\Seen');
    expect(status).not.toContain('\\Flagged');
  });

  it('refuses \\Deleted and contradictory changes with 400', async () => {
    const [msg] = (await newest()).messages;
    for (const payload of [{ addFlags: ['\\Deleted'] }, { addFlags: ['$A'], removeFlags: ['$A'] }, {}]) {
      const res = await gw.app.inject({ method: 'PATCH', url: `${base()}/INBOX/messages/${msg!.id}`, payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().code).toBe('VALIDATION_FAILED');
    }
  });
});

describe('filters', () => {
  it('filters with AND, newest first, total counting matches', async () => {
    const all = await newest();
    const target = all.messages.find((m) => m.subject === 'Note 5')!;
    const bySubject = await newest('INBOX', '&subject=Note%205');
    expect(bySubject.messages.map((m) => m.subject)).toEqual(['Note 5']);
    expect(bySubject.total).toBe(1);
    const byFrom = await newest('INBOX', '&from=w4%40example.com&subject=Note');
    expect(byFrom.messages.map((m) => m.uid)).toEqual([target.uid]);
    const none = await newest('INBOX', '&subject=nothing-like-this');
    expect(none).toMatchObject({ messages: [], total: 0, nextCursor: null });
  });

  it('pages filtered results with the cursor', async () => {
    const seen: string[] = [];
    let url = `${base()}/INBOX/messages?limit=4&subject=Note`;
    for (;;) {
      const page = (await gw.app.inject({ url })).json();
      seen.push(...page.messages.map((m: { subject: string }) => m.subject));
      if (!page.nextCursor) break;
      url = `${base()}/INBOX/messages?limit=4&subject=Note&cursor=${encodeURIComponent(page.nextCursor)}`;
    }
    expect(seen.length).toBe(new Set(seen).size);
    expect(seen.filter((s) => s.startsWith('Note')).length).toBe(seen.length);
  });

  it('rejects bad filter values with 400 naming the parameter', async () => {
    for (const [query, name] of [['since=yesterday', 'since'], ['larger=-1', 'larger'], ['seen=maybe', 'seen']] as const) {
      const res = await gw.app.inject({ url: `${base()}/INBOX/messages?${query}` });
      expect(res.statusCode).toBe(400);
      expect(res.json().detail).toContain(name);
    }
  });

  it('searches non-ASCII terms', async () => {
    const client = new ImapFlow({ host: dovecot.host, port: dovecot.imapPort, secure: false, doSTARTTLS: false, auth: { user: user.username, pass: user.password }, logger: false });
    await client.connect();
    await client.append('INBOX', textMessage({ subject: '=?UTF-8?B?' + Buffer.from('Grüße aus Köln').toString('base64') + '?=' }));
    await client.logout();
    const res = await newest('INBOX', `&subject=${encodeURIComponent('Köln')}`);
    expect(res.messages.map((m) => m.subject)).toEqual(['Grüße aus Köln']);
  });
});

describe('mailboxes, move, copy, delete, append', () => {
  it('creates, moves into, copies, renames, unsubscribes and deletes', async () => {
    const created = await gw.app.inject({ method: 'POST', url: base(), payload: { path: 'Projekte' } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ path: 'Projekte', subscribed: true });
    const again = await gw.app.inject({ method: 'POST', url: base(), payload: { path: 'Projekte' } });
    expect(again.statusCode).toBe(409);
    expect(again.json().code).toBe('MAILBOX_EXISTS');

    const before = await newest();
    const victim = before.messages.find((m) => m.subject === 'Note 3')!;
    const moved = await gw.app.inject({ method: 'POST', url: `${base()}/INBOX/messages/${victim.id}/move`, payload: { destination: 'Projekte' } });
    expect(moved.statusCode, moved.body).toBe(200);
    expect(moved.json().mailbox).toBe('Projekte');
    const inProjekte = await newest('Projekte');
    expect(inProjekte.messages.map((m) => m.subject)).toEqual(['Note 3']);
    expect(inProjekte.messages[0]!.id).toBe(moved.json().id);
    expect((await newest()).messages.map((m) => m.subject)).not.toContain('Note 3');
    // The old id is gone from INBOX.
    const gone = await gw.app.inject({ url: `${base()}/INBOX/messages/${victim.id}` });
    expect(gone.json().code).toBe('MESSAGE_NOT_FOUND');

    const source = before.messages.find((m) => m.subject === 'Note 2')!;
    const copied = await gw.app.inject({ method: 'POST', url: `${base()}/INBOX/messages/${source.id}/copy`, payload: { destination: 'Projekte' } });
    expect(copied.statusCode, copied.body).toBe(201);
    expect((await newest('Projekte')).total).toBe(2);
    expect((await newest()).messages.map((m) => m.subject)).toContain('Note 2');

    const missingDest = await gw.app.inject({ method: 'POST', url: `${base()}/INBOX/messages/${source.id}/move`, payload: { destination: 'Nowhere' } });
    expect(missingDest.statusCode).toBe(404);
    expect(missingDest.json().code).toBe('MAILBOX_NOT_FOUND');
    expect((await newest()).messages.map((m) => m.subject)).toContain('Note 2');

    const missingSource = await gw.app.inject({ method: 'POST', url: `${base()}/INBOX/messages/${victim.id}/move`, payload: { destination: 'Nowhere' } });
    expect(missingSource.json().code).toBe('MESSAGE_NOT_FOUND');

    const renamed = await gw.app.inject({ method: 'PATCH', url: `${base()}/Projekte`, payload: { path: 'Archiv-2024' } });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(renamed.json().path).toBe('Archiv-2024');
    expect((await newest('Archiv-2024')).total).toBe(2);
    const unsub = await gw.app.inject({ method: 'PATCH', url: `${base()}/Archiv-2024`, payload: { subscribed: false } });
    expect(unsub.json().subscribed).toBe(false);

    const inboxDelete = await gw.app.inject({ method: 'DELETE', url: `${base()}/INBOX` });
    expect(inboxDelete.statusCode).toBe(400);
    const del = await gw.app.inject({ method: 'DELETE', url: `${base()}/Archiv-2024` });
    expect(del.statusCode).toBe(204);
    const list = (await gw.app.inject({ url: base() })).json();
    expect(list.mailboxes.map((m: { path: string }) => m.path)).not.toContain('Archiv-2024');
  });

  it('deletes exactly one message', async () => {
    const before = await newest();
    const victim = before.messages[0]!;
    // Another client has flagged a different message \Deleted without expunging: it must survive.
    const other = before.messages[1]!;
    await dovecot.doveadm(['flags', 'add', '-u', user.username, '\\Deleted', 'mailbox', 'INBOX', 'uid', String(other.uid)]);
    const res = await gw.app.inject({ method: 'DELETE', url: `${base()}/INBOX/messages/${victim.id}` });
    expect(res.statusCode).toBe(204);
    const after = await newest();
    expect(after.total).toBe(before.total - 1);
    expect(after.messages.map((m) => m.uid)).toContain(other.uid);
    const again = await gw.app.inject({ method: 'DELETE', url: `${base()}/INBOX/messages/${victim.id}` });
    expect(again.json().code).toBe('MESSAGE_NOT_FOUND');
  });

  it('appends exactly the bytes sent, with flags, and refuses oversized bodies', async () => {
    const message = Buffer.concat([textMessage({ subject: 'Appended' }), Buffer.from('8-bit: \xe9\xe8\r\n', 'latin1')]);
    const res = await gw.app.inject({
      method: 'POST',
      url: `${base()}/INBOX/messages?flags=%5CSeen&flags=%24Work`,
      headers: { 'content-type': 'message/rfc822' },
      payload: message,
    });
    expect(res.statusCode, res.body).toBe(201);
    const { id } = res.json();
    const raw = await gw.app.inject({ url: `${base()}/INBOX/messages/${id}/raw` });
    expect(raw.rawPayload.equals(message)).toBe(true);
    const summary = (await gw.app.inject({ url: `${base()}/INBOX/messages/${id}` })).json();
    expect(summary.flags).toEqual(expect.arrayContaining(['\\Seen', '$Work']));

    const small = await startGateway({ MAX_UPLOAD_BYTES: '2048' });
    try {
      const acct = await createImapAccount(small.app, dovecot, user);
      const big = await small.app.inject({
        method: 'POST',
        url: `/v1/accounts/${acct}/mailboxes/INBOX/messages`,
        headers: { 'content-type': 'message/rfc822' },
        payload: Buffer.alloc(4096, 'a'),
      });
      expect(big.statusCode).toBe(413);
      expect(big.json().code).toBe('PAYLOAD_TOO_LARGE');
    } finally {
      await small.close();
    }
    const wrongType = await gw.app.inject({ method: 'POST', url: `${base()}/INBOX/messages`, headers: { 'content-type': 'text/plain' }, payload: 'x' });
    expect(wrongType.statusCode).toBe(415);
    const noBox = await gw.app.inject({ method: 'POST', url: `${base()}/Nope/messages`, headers: { 'content-type': 'message/rfc822' }, payload: message });
    expect(noBox.json().code).toBe('MAILBOX_NOT_FOUND');
  });
});
